package peerstore_test

import (
	"testing"
	"time"

	"github.com/blobswarm/blobswarm/tracker/peerstore"
	"github.com/blobswarm/blobswarm/tracker/peerstore/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) peerstore.Store {
		return peerstore.NewMemory(peerstore.MemoryOptions{Now: now})
	})
}
