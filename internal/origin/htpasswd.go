package origin

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// writeHtpasswd writes the single-user bcrypt file distribution's htpasswd
// controller reads, and returns its path.
func writeHtpasswd(dir string, h Htpasswd) (string, error) {
	if h.Username == "" || strings.ContainsAny(h.Username, ":\n") {
		return "", fmt.Errorf("origin: invalid htpasswd username %q", h.Username)
	}
	// The controller runs bcrypt on every request: the cheapest cost keeps a
	// test pull of many blobs fast, and the file guards nothing real.
	hash, err := bcrypt.GenerateFromPassword([]byte(h.Password), bcrypt.MinCost)
	if err != nil {
		return "", fmt.Errorf("origin: hash htpasswd password: %w", err)
	}
	path := filepath.Join(dir, "htpasswd")
	line := h.Username + ":" + string(hash) + "\n"
	if err := os.WriteFile(path, []byte(line), 0o600); err != nil {
		return "", fmt.Errorf("origin: write htpasswd: %w", err)
	}
	return path, nil
}
