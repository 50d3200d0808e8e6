// Package config reads usher's configuration, written in Dovecot 2.3's
// syntax, into typed Settings.
//
// Two layers: ParseTree turns text into a tree of Nodes (settings and
// sections, each with its file and line) and knows nothing of meanings;
// Parse and Load then apply that tree to Settings, which start from
// Dovecot's defaults.
//
// The syntax follows what Dovecot 2.3.19 does, as observed with doveconf:
//
//   - "key = value": the value runs to the end of the line and is trimmed;
//     '#' starts a comment unless inside single or double quotes (a '#'
//     glued to text is still a comment, with a warning). A value wholly in
//     quotes loses them and its backslash escapes.
//   - "name [label] {" opens a section, "}" alone closes it. Sections nest
//     and must close in the file that opened them.
//   - A line ending in '\' continues on the next one, joined by one space.
//   - "!include path" and "!include_try path" read files relative to the
//     including file; Load expands glob patterns (sorted), Parse does not.
//     !include_try tolerates missing files. Loops, more than 16 nested
//     levels and more than 256 files are errors.
//   - "key = <path" sets the value to the file's contents, as read.
//   - In an unquoted value, each space-separated token "$name" becomes the
//     last value of setting name in the current or an enclosing section, or
//     its default; "$ENV:NAME" reads the environment.
//
// Settings usher knows are checked and stored; passdb sections are kept as
// Settings.Passdbs; other Dovecot settings and sections (userdb, protocol,
// plugin, ...) produce a Warning; anything else
// is an *Error naming file and line, as are all other problems.
package config
