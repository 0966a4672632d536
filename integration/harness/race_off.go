//go:build !race

package harness

// raceBuild is true in a test binary built with -race: the processes it
// starts are then built with -race too, so their data races fail tests.
const raceBuild = false
