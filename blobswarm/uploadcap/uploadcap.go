// Package uploadcap is the cap on piece data a node sends to peers, for
// mirrors and the seeder alike.
package uploadcap

import "golang.org/x/time/rate"

// Limiter caps piece data sent to peers at bytesPerSecond. Its burst is
// 5 ms of the rate, and at least largestRequest so that any request it
// accepts fits: a cap exists to keep the host's uplink queue short (a host
// whose uplink is full starves its own downloads, their acknowledgements
// stuck behind its uploads), and a burst of a second's worth, as before,
// let a capped mirror fill that queue anyway.
func Limiter(bytesPerSecond int64, largestRequest int) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(bytesPerSecond), max(int(bytesPerSecond/200), largestRequest))
}
