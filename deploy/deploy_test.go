// Package deploy_test checks the deployment files against the code they
// run: every Kubernetes manifest decodes strictly into the API types,
// every command line uses only flags the binaries have, every config file
// decodes strictly into the server's config, and the ports, probes and
// service names they mention agree with each other. A typo anywhere fails.
package deploy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/blobswarm/blobswarm/internal/registry/upstream"
	"github.com/blobswarm/blobswarm/mirror"
	"github.com/blobswarm/blobswarm/tracker"
)

var binDir string

// TestMain builds the binaries the deployment files run, once.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "blobswarm-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "../cmd/blobswarm", "../cmd/mirrorctl")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// commandLine is a command a deployment file runs: a binary, its
// subcommand words and its flags. Flags are written --name=value (or a bare
// --name for booleans) so that a value is never mistaken for a subcommand.
type commandLine struct {
	binary string
	words  []string
	flags  map[string]string
}

func parseCommand(t *testing.T, where string, argv []string) commandLine {
	t.Helper()
	if len(argv) == 0 {
		t.Fatalf("%s: empty command", where)
	}
	c := commandLine{binary: filepath.Base(argv[0]), flags: map[string]string{}}
	for _, a := range argv[1:] {
		switch {
		case strings.HasPrefix(a, "$"):
			// An environment variable systemd expands (extra flags).
		case strings.HasPrefix(a, "--"):
			name, value, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
			c.flags[name] = value
		case strings.HasPrefix(a, "-"):
			t.Errorf("%s: write %q as --name=value", where, a)
		case len(c.flags) > 0 && !isWord(a):
			t.Errorf("%s: %q follows a flag; write flags as --name=value", where, a)
		default:
			c.words = append(c.words, a)
		}
	}
	return c
}

var wordRE = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

func isWord(s string) bool { return wordRE.MatchString(s) }

var (
	helpFlagRE = regexp.MustCompile(`(?m)^\s+(?:-[a-zA-Z], )?--([a-z0-9-]+)`)
	helpCache  = map[string]map[string]bool{}
)

// check runs `<binary> <words> --help` and fails t for a subcommand or
// flag the binary does not have.
func (c commandLine) check(t *testing.T, where string) {
	t.Helper()
	path := filepath.Join(binDir, c.binary)
	if _, err := os.Stat(path); err != nil {
		t.Errorf("%s: runs %s, which is not a command of this repository", where, c.binary)
		return
	}
	key := c.binary + " " + strings.Join(c.words, " ")
	known, ok := helpCache[key]
	if !ok {
		out, err := exec.Command(path, append(append([]string{}, c.words...), "--help")...).CombinedOutput()
		if err != nil {
			t.Errorf("%s: %s --help: %v\n%s", where, key, err, out)
			return
		}
		// Cobra answers --help of an unknown subcommand with its parent's
		// help; the usage line says which command it described.
		if !bytes.Contains(out, []byte("Usage:\n  "+key+" [flags]")) {
			t.Errorf("%s: %q is not a command: its --help shows\n%s", where, key, out)
			return
		}
		known = map[string]bool{}
		for _, m := range helpFlagRE.FindAllStringSubmatch(string(out), -1) {
			known[m[1]] = true
		}
		helpCache[key] = known
	}
	for name := range c.flags {
		if !known[name] {
			t.Errorf("%s: %s has no flag --%s", where, key, name)
		}
	}
}

// serverConfig decodes a config file of `blobswarm mirror` or `blobswarm
// tracker` as the server does, refusing unknown keys, and returns its
// listen, peer-listen and data settings.
type serverConfig struct {
	Listen, PeerListen, Data string
	Tracker                  []string // mirror only
	AnnounceURL              string   // tracker only
	// SecretFile is where the server reads the fleet's secret:
	// tracker-secret-file of a mirror, secret-file of the tracker.
	SecretFile string
	// Allow is the registries the server fetches from.
	Allow *upstream.AllowList
}

func decodeConfig(t *testing.T, where, sub string, b []byte) serverConfig {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	switch sub {
	case "mirror":
		cfg := mirror.Defaults()
		if err := dec.Decode(&cfg); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		eps, err := cfg.Endpoints()
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		allow, err := cfg.AllowList(eps)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		return serverConfig{Listen: cfg.Listen, PeerListen: cfg.PeerListen, Data: cfg.Data, Tracker: cfg.Tracker, SecretFile: cfg.TrackerSecretFile, Allow: allow}
	case "tracker":
		cfg := tracker.Defaults()
		if err := dec.Decode(&cfg); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		// The secret file exists where the server runs, not here; the
		// callers check it is the one the deployment provides.
		secret := cfg.SecretFile
		cfg.SecretFile = ""
		if err := cfg.Validate(); err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		eps, err := upstream.ParseEndpoints(cfg.Upstream, cfg.Credentials)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		allow, err := cfg.AllowList(eps)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		return serverConfig{Listen: cfg.Listen, PeerListen: cfg.PeerListen, Data: cfg.Data, AnnounceURL: cfg.AnnounceURL, SecretFile: secret, Allow: allow}
	}
	t.Fatalf("%s: config for unknown server %q", where, sub)
	return serverConfig{}
}

// imageBinaries lists what the image `make image` builds holds: the files
// the Dockerfile's prebuilt stage copies in, and its entrypoint.
func imageBinaries(t *testing.T) (files map[string]bool, entrypoint string) {
	t.Helper()
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	files = map[string]bool{}
	in := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			in = len(f) == 4 && strings.EqualFold(f[2], "AS") && f[3] == "prebuilt"
		case "COPY":
			if in && len(f) >= 3 {
				files[f[len(f)-1]] = true
			}
		case "ENTRYPOINT":
			if in {
				entrypoint = strings.Trim(strings.TrimPrefix(strings.Join(f[1:], " "), "["), `"]`)
			}
		}
	}
	if entrypoint == "" {
		t.Fatal("Dockerfile: no ENTRYPOINT in the prebuilt stage")
	}
	return files, entrypoint
}

// makeImage is the tag `make image` gives the image.
func makeImage(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^image:.*\n(?:\t.*\n)*?\t.*docker build .*-t (\S+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("Makefile: no docker build -t in the image target")
	}
	return string(m[1])
}

// secretFlag is the flag (and config key) naming the fleet's secret file
// of a server.
func secretFlag(sub string) string {
	if sub == "mirror" {
		return "tracker-secret-file"
	}
	return "secret-file"
}

// checkOneSecret fails unless the tracker and every mirror read the
// fleet's secret from the same source (what each deployment names it by:
// a file, a Kubernetes Secret's key).
func checkOneSecret(t *testing.T, where string, sources map[string][]string) {
	t.Helper()
	for _, sub := range []string{"mirror", "tracker"} {
		if len(sources[sub]) == 0 {
			t.Errorf("%s: blobswarm %s is given no fleet secret (%s)", where, sub, secretFlag(sub))
		}
	}
	var all []string
	for _, srcs := range sources {
		all = append(all, srcs...)
	}
	for _, src := range all {
		if src != all[0] {
			t.Errorf("%s: the servers read the fleet's secret from different sources: %v", where, sources)
			return
		}
	}
}

// flagOr returns the value of --name if the command line sets it, else
// the config file's.
func flagOr(c commandLine, name, config string) string {
	if v, ok := c.flags[name]; ok {
		return v
	}
	return config
}
