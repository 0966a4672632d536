// Package secretfile reads the fleet's shared secret from the file
// configuration names, so the secret never appears in flags, config files
// or process listings.
package secretfile

import (
	"fmt"
	"os"
)

// Read reads a shared secret from a file (trailing newline ignored), or
// returns "" when no file is given.
func Read(file string) (string, error) {
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("secret-file: %w", err)
	}
	s := string(b)
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	if s == "" {
		return "", fmt.Errorf("secret-file: %s is empty", file)
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return "", fmt.Errorf("secret-file: %s: the secret must not contain spaces or control characters", file)
		}
	}
	return s, nil
}
