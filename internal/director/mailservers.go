package director

import (
	"fmt"
	"net/netip"
	"strings"
)

// ParseMailServers parses director_mail_servers: space-separated tokens "host", "ip1-ip2" and
// either of them followed by "@tag". A range may vary only in the last octet (IPv4) or the last
// 16 bits (IPv6). A hostname adds one host per resolved address and is remembered as
// Host.Hostname; resolve may be nil, and then only IP literals are accepted. Every host starts
// up with DefaultVhostCount. The result is sorted by IP, stable for one IP in several tags.
//
// Dovecot 2.3 accepts the same IP in several tags (one host per tag, as here) and also keeps an
// exact duplicate as a second host entry; such a twin adds identical ring points, so it cannot
// change routing, and usher keeps only the first.
func ParseMailServers(s string, resolve func(host string) ([]netip.Addr, error)) ([]Host, error) {
	type key struct {
		ip  netip.Addr
		tag string
	}
	var hosts []Host
	seen := make(map[key]bool)
	add := func(ip netip.Addr, tag, hostname string) {
		if seen[key{ip, tag}] {
			return
		}
		seen[key{ip, tag}] = true
		hosts = append(hosts, Host{IP: ip, VhostCount: DefaultVhostCount, Tag: tag, Hostname: hostname})
	}
	for _, tok := range strings.Fields(s) {
		name, tag, _ := strings.Cut(tok, "@")
		if name == "" {
			return nil, fmt.Errorf("director_mail_servers: %q: missing host", tok)
		}
		// Like Dovecot, a token is a range only if both sides are IP literals; anything else with
		// a '-' ("mail-1.example.com", even "10.0.0.1-x") is a hostname.
		if from, to, ok := strings.Cut(name, "-"); ok {
			first, err1 := parseIP(from)
			last, err2 := parseIP(to)
			if err1 == nil && err2 == nil {
				ips, err := ipRange(first, last)
				if err != nil {
					return nil, fmt.Errorf("director_mail_servers: %q: %w", tok, err)
				}
				for _, ip := range ips {
					add(ip, tag, "")
				}
				continue
			}
		}
		if ip, err := parseIP(name); err == nil {
			add(ip, tag, "")
			continue
		}
		if resolve == nil {
			return nil, fmt.Errorf("director_mail_servers: %q is not an IP address", name)
		}
		ips, err := resolve(name)
		if err != nil {
			return nil, fmt.Errorf("director_mail_servers: resolving %q: %w", name, err)
		}
		if len(ips) == 0 {
			return nil, fmt.Errorf("director_mail_servers: %q resolves to no address", name)
		}
		for _, ip := range ips {
			add(ip.WithZone(""), tag, name)
		}
	}
	SortHosts(hosts)
	return hosts, nil
}

// parseIP accepts plain IPv4/IPv6 literals; zones have no meaning for a backend shared by a
// ring of directors.
func parseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	if ip.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q: zones are not allowed", s)
	}
	return ip, nil
}

// ipRange expands first..to (inclusive). Only the last octet of an IPv4 address or the last 16
// bits of an IPv6 address may differ, which also bounds a range to 65536 hosts.
func ipRange(first, last netip.Addr) ([]netip.Addr, error) {
	if first.Is4() != last.Is4() {
		return nil, fmt.Errorf("IP range %s-%s mixes address families", first, last)
	}
	a, b := first.As16(), last.As16()
	if a != b {
		fixed, part := 14, "16 bits"
		if first.Is4() {
			fixed, part = 15, "octet"
		}
		if string(a[:fixed]) != string(b[:fixed]) {
			return nil, fmt.Errorf("IP range %s-%s: only the last %s may differ", first, last, part)
		}
	}
	if CompareAddr(first, last) > 0 {
		return nil, fmt.Errorf("IP range %s-%s: start is after end", first, last)
	}
	var out []netip.Addr
	for ip := first; ; ip = ip.Next() {
		out = append(out, ip)
		if ip == last {
			return out, nil
		}
	}
}
