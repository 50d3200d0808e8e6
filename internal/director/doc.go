// Package director holds the pure routing logic of Dovecot 2.3's director: the username hash,
// the consistent-hashing vhost ring per tag and the director_mail_servers syntax. It does no
// I/O and reads no clock, so the router and the replicated state can share it and every
// director in a ring computes the same answer as a Dovecot 2.3 director would.
package director
