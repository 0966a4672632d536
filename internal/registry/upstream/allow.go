package upstream

import (
	"fmt"
	"slices"

	"github.com/blobswarm/blobswarm/internal/registry/oci"
)

// AllowList is the registries a mirror or a tracker fetches from: those
// its configuration names, or, with any set, every host a client names.
// Without it the server is an open proxy: a client's ns= or registry=
// would make it connect wherever the client likes, with its credentials.
type AllowList struct {
	role  string
	named map[string]bool
	any   bool
}

// NewAllowList allows the given hosts, or any host when any is set; role
// ("mirror", "tracker") names the server in a refusal. A host that is not
// a registry name is an error.
func NewAllowList(role string, hosts []string, any bool) (*AllowList, error) {
	a := &AllowList{role: role, named: map[string]bool{}, any: any}
	for _, h := range hosts {
		if _, err := oci.ParseRegistry(h); err != nil {
			return nil, err
		}
		a.named[h] = true
	}
	return a, nil
}

// Check refuses a registry the configuration does not name, unless any
// registry is allowed. Callers check before anything is fetched, stored
// or dialled.
func (a *AllowList) Check(host string) error {
	if a.any || a.named[host] {
		return nil
	}
	return &DeniedError{Host: host, Role: a.role}
}

// Named reports whether the configuration names host; with any-registry
// other hosts pass Check without being named.
func (a *AllowList) Named(host string) bool { return a.named[host] }

// Hosts lists the named registries, sorted.
func (a *AllowList) Hosts() []string {
	hosts := make([]string, 0, len(a.named))
	for h := range a.named {
		hosts = append(hosts, h)
	}
	slices.Sort(hosts)
	return hosts
}

// DeniedError is a request for a registry the configuration does not
// allow. Clients get it as DENIED (403); its message names the registry
// and the configuration that would allow it.
type DeniedError struct {
	Host string
	Role string
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("this %s has no upstream for registry %s: name it in the registry list (registry key, --registry %s), give it an upstream URL (upstream key), or allow any registry (any-registry)",
		e.Role, e.Host, e.Host)
}
