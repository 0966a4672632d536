package announce

import (
	"fmt"

	"github.com/anacrolix/torrent/tracker"
	"github.com/prometheus/client_golang/prometheus"
)

// Failure reasons, as metric labels.
const (
	failBadRequest = "bad_request" // the query does not parse
	failRefused    = "refused"     // the peer's address is not allowed
	failStore      = "store"       // the peer store did not answer
)

type metrics struct {
	announcesVec *prometheus.CounterVec
	// announces are announcesVec's series by event, looked up once rather
	// than by label on every announce.
	announces map[tracker.AnnounceEvent]prometheus.Counter
	failures  *prometheus.CounterVec
	handedOut prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		announcesVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blobswarm_tracker_announces_total",
			Help: "Announces accepted, by event (none for the periodic ones).",
		}, []string{"event"}),
		announces: make(map[tracker.AnnounceEvent]prometheus.Counter),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blobswarm_tracker_announce_failures_total",
			Help: "Announces answered with a failure reason, by why.",
		}, []string{"reason"}),
		handedOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "blobswarm_tracker_peers_handed_out_total",
			Help: "Peer addresses sent in announce responses.",
		}),
	}
	// Every series exists from the start, so rates work before the first event.
	for _, e := range []tracker.AnnounceEvent{tracker.None, tracker.Started, tracker.Completed, tracker.Stopped} {
		m.announces[e] = m.announcesVec.WithLabelValues(eventLabel(e))
	}
	for _, r := range []string{failBadRequest, failRefused, failStore} {
		m.failures.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.announcesVec, m.failures, m.handedOut} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register announce metrics: %w", err)
		}
	}
	return m, nil
}

func eventLabel(e tracker.AnnounceEvent) string {
	if e == tracker.None {
		return "none"
	}
	return e.String()
}
