// Package hoststoml writes containerd's registry host configuration
// (certs.d/<registry>/hosts.toml), the file containerd reads to send pulls
// for a registry to a mirror first. Reading it is containerd's own
// core/remotes/docker/config package's job.
package hoststoml

import (
	"bytes"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// Mirror is one [host."URL"] entry.
type Mirror struct {
	URL string
	// DialTimeout bounds connecting to the mirror so a node whose mirror
	// is down falls back to the origin quickly (Spegel uses 200ms).
	DialTimeout time.Duration
}

// Render returns hosts.toml content that sends pulls and tag resolution for
// a registry to the mirrors, in the order given (containerd tries hosts in
// file order), and falls back to server, the registry's own URL, last.
func Render(server string, mirrors []Mirror) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("# Written by blobswarm: pulls go to the node's mirror first, then to server.\n")
	if server != "" {
		if err := checkURL(server); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		fmt.Fprintf(&b, "server = %s\n", strconv.Quote(server))
	}
	// A repeated [host."URL"] table makes the file invalid TOML, and
	// containerd then ignores all of it: pulls would skip every mirror.
	seen := map[string]bool{}
	for _, m := range mirrors {
		if err := checkURL(m.URL); err != nil {
			return nil, fmt.Errorf("mirror: %w", err)
		}
		if seen[m.URL] {
			return nil, fmt.Errorf("mirror: %q given twice", m.URL)
		}
		seen[m.URL] = true
		fmt.Fprintf(&b, "\n[host.%s]\n  capabilities = [\"pull\", \"resolve\"]\n", strconv.Quote(m.URL))
		if m.DialTimeout > 0 {
			fmt.Fprintf(&b, "  dial_timeout = %s\n", strconv.Quote(m.DialTimeout.String()))
		}
	}
	return b.Bytes(), nil
}

// checkURL admits only plain http(s) URLs, which quote the same in Go and
// TOML.
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strconv.Quote(raw) != `"`+raw+`"` {
		return fmt.Errorf("%q is not an http:// or https:// URL", raw)
	}
	return nil
}
