package main

import (
	"testing"

	"github.com/blobswarm/blobswarm/internal/configure"
)

func TestParseRegistries(t *testing.T) {
	got, err := parseRegistries([]string{"docker.io", "ghcr.io", "10.0.0.5:5000=http://10.0.0.5:5000"})
	if err != nil {
		t.Fatal(err)
	}
	want := []configure.Registry{
		{Host: "docker.io", Server: "https://registry-1.docker.io"},
		{Host: "ghcr.io", Server: "https://ghcr.io"},
		{Host: "10.0.0.5:5000", Server: "http://10.0.0.5:5000"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"", "=http://x", "host="} {
		if _, err := parseRegistries([]string{bad}); err == nil {
			t.Errorf("--registry %q accepted", bad)
		}
	}
}
