// Package api names the tracker's HTTP endpoints, shared by the tracker and
// the mirrors that call it. Names travel as query parameters (registry,
// repo, digest, tag), since repositories contain slashes.
package api

const (
	// AnnouncePath serves BitTorrent announces (BEP 3, compact peers).
	AnnouncePath = "/announce"
	// MetainfoPath answers a blob's torrent info bytes, or 202 with
	// Retry-After while the seeder fetches the blob from the origin.
	MetainfoPath = "/v1/metainfo"
	// ManifestPath resolves a tag through the coalescing cache.
	ManifestPath = "/v1/manifest"
	// SeederHeader on a metainfo answer names the seeder's peer address,
	// so mirrors can tell bytes from the seeder from bytes from peers.
	SeederHeader = "Blobswarm-Seeder"
	// SecretParam carries the fleet's shared secret in announce URLs; the
	// other endpoints take it as "Authorization: Bearer <secret>".
	SecretParam = "auth"
)
