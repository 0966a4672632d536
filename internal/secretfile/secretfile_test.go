package secretfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if s, err := Read(""); s != "" || err != nil {
		t.Fatalf(`Read("") = %q, %v; want no secret`, s, err)
	}
	if s, err := Read(write("ok", "s3cret\r\n")); s != "s3cret" || err != nil {
		t.Fatalf("Read = %q, %v; want the secret without its line end", s, err)
	}
	for name, content := range map[string]string{"empty": "\n", "space": "a b\n", "control": "a\x01b"} {
		if _, err := Read(write(name, content)); err == nil || !strings.HasPrefix(err.Error(), "secret-file: ") {
			t.Errorf("%s secret: %v, want an error naming secret-file", name, err)
		}
	}
	if _, err := Read(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file gave no error")
	}
}
