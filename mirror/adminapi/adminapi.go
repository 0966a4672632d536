// Package adminapi is the wire format of the mirror's admin API, shared by
// the mirror and `mirrorctl`. The API lives on the registry's listener under
// Prefix:
//
//	GET  /_blobswarm/v1/status    Status as JSON
//	POST /_blobswarm/v1/prefetch  PrefetchRequest as JSON; answers 200 with
//	                              an NDJSON stream of Event, the last one of
//	                              type "summary"
//
// When the mirror runs with --admin-token every request needs
// "Authorization: Bearer <token>"; without one, only loopback clients are
// answered. A prefetch request's Content-Type is application/json.
// Errors answer with a 4xx/5xx status and an ErrorBody.
package adminapi

import "strings"

// Prefix is where the admin API is mounted on the mirror's listener. The
// leading underscore keeps it out of the /v2/ namespace registries use.
const Prefix = "/_blobswarm/v1/"

// Paths of the endpoints.
const (
	StatusPath   = Prefix + "status"
	PrefetchPath = Prefix + "prefetch"
)

// NDJSON is the media type of the prefetch event stream.
const NDJSON = "application/x-ndjson"

// Error codes in ErrorBody.
const (
	CodeUnauthorized    = "UNAUTHORIZED"
	CodeDenied          = "DENIED"
	CodeInvalidRequest  = "INVALID_REQUEST"
	CodeUnknownRegistry = "UNKNOWN_REGISTRY"
	CodeNoTracker       = "NO_TRACKER"
	CodeNotFound        = "NOT_FOUND"
	CodeNoPlatform      = "NO_MATCHING_PLATFORM"
	CodeUpstream        = "UPSTREAM_FAILED"
)

// ErrorBody is every admin error answer, shaped like an OCI error body.
type ErrorBody struct {
	Errors []ErrorEntry `json:"errors"`
}

// ErrorEntry is one error.
type ErrorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error joins the messages, for a CLI to print.
func (e ErrorBody) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, x := range e.Errors {
		msgs[i] = x.Message
	}
	return strings.Join(msgs, "; ")
}

// Status is the node at a glance.
type Status struct {
	Cache Cache `json:"cache"`
	// Registries the mirror has an upstream for; DefaultRegistry serves
	// requests that do not name one (Docker's registry-mirrors).
	Registries      []Registry `json:"registries"`
	DefaultRegistry string     `json:"defaultRegistry"`
	// InflightFetches are blob fetches in progress.
	InflightFetches int `json:"inflightFetches"`
	// Bytes counts since the mirror started.
	Bytes Bytes `json:"bytes"`
	// Swarm is nil for a mirror without a tracker.
	Swarm    *Swarm    `json:"swarm,omitempty"`
	Trackers []Tracker `json:"trackers"`
}

// Cache is the local blob store.
type Cache struct {
	Bytes int64 `json:"bytes"`
	Blobs int   `json:"blobs"`
	// QuotaBytes is the store's size limit; 0 means none.
	QuotaBytes int64 `json:"quotaBytes"`
	// Evictions and EvictedBytes count blobs removed to stay under the
	// quota since the mirror started.
	Evictions    int64 `json:"evictions"`
	EvictedBytes int64 `json:"evictedBytes"`
}

// Registry is one mirrored registry and where the mirror reaches it.
type Registry struct {
	Host string `json:"host"`
	URL  string `json:"url"`
}

// Bytes are counters since the mirror started.
type Bytes struct {
	Served     int64 `json:"served"`
	FromOrigin int64 `json:"fromOrigin"`
	FromPeers  int64 `json:"fromPeers"`
	FromSeeder int64 `json:"fromSeeder"`
	Uploaded   int64 `json:"uploaded"`
}

// Swarm is the node's BitTorrent side.
type Swarm struct {
	// Seeding counts complete torrents offered to the fleet.
	Seeding int `json:"seeding"`
	// Active are torrents still downloading or with peers connected.
	Active []Torrent `json:"active"`
	// DownloadRate and UploadRate are bytes/s over a short recent window.
	DownloadRate float64 `json:"downloadRate"`
	UploadRate   float64 `json:"uploadRate"`
}

// Torrent is one blob's swarm.
type Torrent struct {
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	Completed int64  `json:"completed"`
	Complete  bool   `json:"complete"`
	Peers     int    `json:"peers"`
	// Rate is bytes/s completed over a short recent window.
	Rate float64 `json:"rate"`
}

// Tracker is one configured tracker replica.
type Tracker struct {
	URL       string `json:"url"`
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
}

// PrefetchRequest asks the mirror to pull one image into its store, or,
// with Fleet, its tracker's seeder to fetch every blob from the origin.
type PrefetchRequest struct {
	// Image is a reference as Docker writes it: nginx:1.27,
	// ghcr.io/org/app@sha256:...
	Image string `json:"image"`
	// Platform is os/arch[/variant]; empty means the mirror host's.
	Platform     string `json:"platform,omitempty"`
	AllPlatforms bool   `json:"allPlatforms,omitempty"`
	Fleet        bool   `json:"fleet,omitempty"`
}

// Event types on the prefetch stream.
const (
	EventResolved = "resolved" // the reference's manifest, once
	EventManifest = "manifest" // a platform's image manifest
	EventBlob     = "blob"     // progress or end of one blob
	EventSummary  = "summary"  // last event
)

// Blob states.
const (
	StatePending = "pending"
	StateRunning = "running"
	StateDone    = "done"
	StateFailed  = "failed"
)

// Sources of a blob's bytes.
const (
	SourceCache  = "cache"  // already in the store
	SourceSwarm  = "swarm"  // peers and the tracker's seeder
	SourceOrigin = "origin" // the upstream registry, directly
	SourceSeeder = "seeder" // fleet prefetch: the tracker's seeder holds it
)

// Event is one line of the prefetch stream.
type Event struct {
	Type string `json:"type"`
	// Resolved, manifest: the reference and digest.
	Image    string `json:"image,omitempty"`
	Digest   string `json:"digest,omitempty"`
	Platform string `json:"platform,omitempty"`
	// Blob: Kind is "config" or "layer"; Done the bytes in so far.
	Kind   string `json:"kind,omitempty"`
	Size   int64  `json:"size,omitempty"`
	Done   int64  `json:"done,omitempty"`
	State  string `json:"state,omitempty"`
	Source string `json:"source,omitempty"`
	Peers  int    `json:"peers,omitempty"`
	Error  string `json:"error,omitempty"`
	// Summary.
	Blobs  int      `json:"blobs,omitempty"`
	Bytes  int64    `json:"bytes,omitempty"`
	Failed []string `json:"failed,omitempty"`
}
