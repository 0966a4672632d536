package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// How the fleet's shared secret is used on the wire. The secret itself is
// never sent: mirrors and trackers derive a key from it for each use, so
// that what a request shows an eavesdropper grants no more than that use.
//
//   - Announces carry AnnounceHeader: AnnounceToken, which grants joining
//     swarms and nothing else. anacrolix's announce client does not verify
//     an https tracker's certificate, so this is the credential an active
//     man in the middle can learn even over TLS.
//   - Metainfo, pieces and tag requests carry "Authorization: Bearer" with
//     APIToken.
const AnnounceHeader = "Blobswarm-Announce-Token"

// Keys are what a fleet's shared secret makes; nil when there is none.
type Keys struct {
	api, announce string
}

// NewKeys derives the fleet's keys from its shared secret (nil for none).
func NewKeys(secret string) *Keys {
	if secret == "" {
		return nil
	}
	return &Keys{
		api:      hex.EncodeToString(derive(secret, "blobswarm api")),
		announce: hex.EncodeToString(derive(secret, "blobswarm announce")),
	}
}

func derive(secret, use string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(use))
	return m.Sum(nil)
}

// APIToken is the bearer token of metainfo, pieces and tag requests.
func (k *Keys) APIToken() string { return k.api }

// AnnounceToken is the value of AnnounceHeader on announces.
func (k *Keys) AnnounceToken() string { return k.announce }

// ErrorCodeNotAdmitted refuses a request from outside the tracker's
// peer-cidr, whatever credential it carries.
var ErrorCodeNotAdmitted = errcode.Register("blobswarm.tracker", errcode.ErrorDescriptor{
	Value:          "NOT_ADMITTED",
	Message:        "address not admitted",
	Description:    "The request comes from outside the networks the tracker admits (peer-cidr).",
	HTTPStatusCode: http.StatusForbidden,
})
