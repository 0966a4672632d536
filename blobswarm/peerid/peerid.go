// Package peerid names blobswarm's two kinds of node on the wire: the
// BEP 20 peer-ID prefixes of the tracker's seeder and of the mirrors.
// Mirrors count bytes from a seeder apart from bytes from other mirrors by
// them, since on one host every node may share an IP, and the tracker
// tells complete mirrors from other complete peers by them.
package peerid

const (
	SeederPrefix = "-BS01S0-"
	MirrorPrefix = "-BS01M0-"
)
