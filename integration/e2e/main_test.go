//go:build e2e

package e2e

import (
	"testing"

	"github.com/blobswarm/blobswarm/integration/harness"
)

// harness.Main removes the binaries the tests build.
func TestMain(m *testing.M) { harness.Main(m) }
