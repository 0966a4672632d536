package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// How the fleet's shared secret is used on the wire. The secret itself is
// never sent: mirrors and trackers derive three keys from it, one per use,
// so that what a request shows an eavesdropper grants no more than that
// use.
//
//   - Announces carry AnnounceHeader: AnnounceToken, which grants joining
//     swarms and nothing else. anacrolix's announce client does not verify
//     an https tracker's certificate, so this is the credential an active
//     man in the middle can learn even over TLS.
//   - Metainfo, pieces and tag requests carry "Authorization: Bearer" with
//     APIToken.
//   - The tracker signs its metainfo and tag answers (SignatureHeader)
//     with a third key that never travels, binding the request (method,
//     path and query, and the mirror's NonceHeader, so an old answer cannot
//     be replayed) and the answer (status, Content-Type,
//     Docker-Content-Digest, Retry-After, body). A mirror that has the
//     secret uses no answer whose signature does not verify. The piece-hash
//     stream is signed the same way, in a trailer once its last byte is
//     sent (SignSum, VerifyTrailer).
const (
	AnnounceHeader  = "Blobswarm-Announce-Token"
	SignatureHeader = "Blobswarm-Signature"
	NonceHeader     = "Blobswarm-Nonce"
)

// Keys are what a fleet's shared secret makes; nil when there is none.
type Keys struct {
	api, announce string
	answer        []byte
}

// NewKeys derives the fleet's keys from its shared secret (nil for none).
func NewKeys(secret string) *Keys {
	if secret == "" {
		return nil
	}
	return &Keys{
		api:      hex.EncodeToString(derive(secret, "blobswarm api")),
		announce: hex.EncodeToString(derive(secret, "blobswarm announce")),
		answer:   derive(secret, "blobswarm answer"),
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

// Sign sets the signature of an answer to r in h, which must hold the
// answer's headers.
func (k *Keys) Sign(r *http.Request, status int, h http.Header, body []byte) {
	sum := sha256.Sum256(body)
	k.SignSum(r, status, h, sum[:])
}

// SignSum is Sign for an answer streamed before it is signed: sum is the
// sha256 of the body sent, and h, declared in the Trailer header, carries
// the signature after it.
func (k *Keys) SignSum(r *http.Request, status int, h http.Header, sum []byte) {
	h.Set(SignatureHeader, hex.EncodeToString(k.mac(r, status, h, sum)))
}

// Verify reports whether resp, whose body is body, is the tracker's answer
// to req: signed with the fleet's key for this very request.
func (k *Keys) Verify(req *http.Request, resp *http.Response, body []byte) bool {
	sum := sha256.Sum256(body)
	return k.verify(req, resp, resp.Header.Get(SignatureHeader), sum[:])
}

// VerifyTrailer is Verify for a streamed answer read to its end, whose
// body's sha256 is sum and whose signature came in the trailer.
func (k *Keys) VerifyTrailer(req *http.Request, resp *http.Response, sum []byte) bool {
	return k.verify(req, resp, resp.Trailer.Get(SignatureHeader), sum)
}

func (k *Keys) verify(req *http.Request, resp *http.Response, signature string, sum []byte) bool {
	got, err := hex.DecodeString(signature)
	return err == nil && hmac.Equal(got, k.mac(req, resp.StatusCode, resp.Header, sum))
}

// mac covers every part of an answer a mirror acts on. Fields are joined
// by newlines, which none of them can contain, and the body goes in as its
// sha256, so no two answers share an input.
func (k *Keys) mac(r *http.Request, status int, h http.Header, sum []byte) []byte {
	m := hmac.New(sha256.New, k.answer)
	for _, f := range []string{
		"blobswarm answer v1",
		r.Method,
		r.URL.RequestURI(),
		r.Header.Get(NonceHeader),
		strconv.Itoa(status),
		h.Get("Content-Type"),
		h.Get("Docker-Content-Digest"),
		h.Get("Retry-After"),
		hex.EncodeToString(sum),
	} {
		m.Write([]byte(f))
		m.Write([]byte{'\n'})
	}
	return m.Sum(nil)
}

// ErrorCodeNotAdmitted refuses a request from outside the tracker's
// peer-cidr, whatever credential it carries.
var ErrorCodeNotAdmitted = errcode.Register("blobswarm.tracker", errcode.ErrorDescriptor{
	Value:          "NOT_ADMITTED",
	Message:        "address not admitted",
	Description:    "The request comes from outside the networks the tracker admits (peer-cidr).",
	HTTPStatusCode: http.StatusForbidden,
})
