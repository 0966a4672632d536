package deploy_test

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/blobswarm/blobswarm/internal/secretfile"
)

// TestSystemdUnits checks each unit's ExecStart against the binary's flags
// and its example config (the file of that name next to the unit) against
// the server's config, and that the config's data directory is the one
// systemd creates for the service's dynamic user.
func TestSystemdUnits(t *testing.T) {
	units, err := filepath.Glob("systemd/*.service")
	if err != nil {
		t.Fatal(err)
	}
	if len(units) == 0 {
		t.Fatal("no units in deploy/systemd")
	}
	servers := map[string]bool{}
	secrets := map[string][]string{}
	for _, unit := range units {
		keys := unitKeys(t, unit)
		exec := keys["ExecStart"]
		if len(exec) != 1 {
			t.Errorf("%s: %d ExecStart lines, want 1", unit, len(exec))
			continue
		}
		cl := parseCommand(t, unit, strings.Fields(exec[0]))
		cl.check(t, unit)
		if cl.binary != "blobswarm" || len(cl.words) != 1 {
			t.Errorf("%s: runs %s %v, want blobswarm mirror or tracker", unit, cl.binary, cl.words)
			continue
		}
		sub := cl.words[0]
		servers[sub] = true
		path, ok := cl.flags["config"]
		if !ok {
			t.Errorf("%s: no --config", unit)
			continue
		}
		example := filepath.Join("systemd", filepath.Base(path))
		b, err := os.ReadFile(example)
		if err != nil {
			t.Errorf("%s: --config=%s has no example config: %v", unit, path, err)
			continue
		}
		cfg := decodeConfig(t, example, sub, b)
		data := flagOr(cl, "data", cfg.Data)
		state := keys["StateDirectory"]
		if len(state) != 1 || data != filepath.Join("/var/lib", state[0]) {
			t.Errorf("%s: data directory %s is not the StateDirectory %v, which the dynamic user can write", unit, data, state)
		}
		for _, want := range []string{"NoNewPrivileges", "ProtectSystem", "DynamicUser", "EnvironmentFile"} {
			if len(keys[want]) == 0 {
				t.Errorf("%s: no %s=", unit, want)
			}
		}
		if src := credential(t, unit, keys, flagOr(cl, secretFlag(sub), cfg.SecretFile)); src != "" {
			secrets[sub] = append(secrets[sub], src)
		}
	}
	checkOneSecret(t, "systemd", secrets)
	for _, sub := range []string{"mirror", "tracker"} {
		if !servers[sub] {
			t.Errorf("no unit runs blobswarm %s", sub)
		}
	}
}

// credential checks that a unit's secret file, if it has one, is a
// credential systemd loads for it (LoadCredential=ID:PATH, readable by the
// dynamic user in /run/credentials/UNIT/ID) and returns the file it is
// loaded from.
func credential(t *testing.T, unit string, keys map[string][]string, secretFile string) string {
	t.Helper()
	if secretFile == "" {
		return ""
	}
	dir := filepath.Join("/run/credentials", filepath.Base(unit))
	for _, lc := range keys["LoadCredential"] {
		id, src, _ := strings.Cut(lc, ":")
		if filepath.Join(dir, id) == secretFile {
			return src
		}
	}
	t.Errorf("%s: the fleet's secret %q is not a credential of the unit (LoadCredential=ID:PATH puts one at %s/ID)", unit, secretFile, dir)
	return ""
}

// unitKeys reads the key=value lines of a systemd unit (all sections).
func unitKeys(t *testing.T, path string) map[string][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("%s: line %q is not key=value", path, line)
			continue
		}
		keys[k] = append(keys[k], v)
	}
	return keys
}

// TestComposeFile checks the compose fleet's commands against the binary
// and the config files it mounts against the servers' configs, with the
// image `make image` builds as the default. The fleet itself runs in
// integration/e2e (TestComposeFleet).
func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile("compose/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Services map[string]struct {
			Image   string   `yaml:"image"`
			Command []string `yaml:"command"`
			Volumes []string `yaml:"volumes"`
			Ports   []string `yaml:"ports"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	image := makeImage(t)
	_, entrypoint := imageBinaries(t)
	servers := map[string]bool{}
	secrets := map[string][]string{}
	for name, svc := range file.Services {
		where := "compose service " + name
		if want := "${BLOBSWARM_IMAGE:-" + image + "}"; svc.Image != want {
			t.Errorf("%s: image %q, want %q", where, svc.Image, want)
		}
		cl := parseCommand(t, where, append([]string{entrypoint}, svc.Command...))
		cl.check(t, where)
		if len(cl.words) == 0 {
			continue
		}
		sub := cl.words[0]
		servers[sub] = true
		path, ok := cl.flags["config"]
		if !ok {
			continue
		}
		for _, v := range svc.Volumes {
			src, dst, _ := strings.Cut(strings.TrimSuffix(v, ":ro"), ":")
			if dst != path {
				continue
			}
			b, err := os.ReadFile(filepath.Join("compose", src))
			if err != nil {
				t.Errorf("%s: --config=%s: %v", where, path, err)
				continue
			}
			cfg := decodeConfig(t, filepath.Join("compose", src), sub, b)
			listen := flagOr(cl, "listen", cfg.Listen)
			if !publishes(svc.Ports, port(t, where, listen)) {
				t.Errorf("%s: listens on %s, but publishes %v", where, listen, svc.Ports)
			}
			data := flagOr(cl, "data", cfg.Data)
			writable := false
			for _, v := range svc.Volumes {
				parts := strings.Split(v, ":")
				writable = writable || (len(parts) == 1 && parts[0] == data) || (len(parts) == 2 && parts[1] == data)
			}
			if !writable {
				t.Errorf("%s: data directory %s is not a volume (the container's root is read-only)", where, data)
			}
			if src := mountedFile(t, where, svc.Volumes, flagOr(cl, secretFlag(sub), cfg.SecretFile)); src != "" {
				secrets[sub] = append(secrets[sub], src)
			}
		}
	}
	checkOneSecret(t, "compose", secrets)
	for _, sub := range []string{"origin", "mirror", "tracker"} {
		if !servers[sub] {
			t.Errorf("compose: no service runs blobswarm %s", sub)
		}
	}
}

// mountedFile returns the file of this directory a compose service mounts
// at path (if any), which must hold a secret the servers accept.
func mountedFile(t *testing.T, where string, volumes []string, path string) string {
	t.Helper()
	if path == "" {
		return ""
	}
	for _, v := range volumes {
		src, dst, _ := strings.Cut(strings.TrimSuffix(v, ":ro"), ":")
		if dst != path || !strings.HasPrefix(src, "./") {
			continue
		}
		if _, err := secretfile.Read(filepath.Join("compose", src)); err != nil {
			t.Errorf("%s: %s: %v", where, src, err)
		}
		return src
	}
	t.Errorf("%s: the fleet's secret %q is not a file mounted from deploy/compose", where, path)
	return ""
}

// publishes reports whether a compose ports list ([[ip:]host:]container)
// publishes container port p.
func publishes(ports []string, p int32) bool {
	for _, s := range ports {
		i := strings.LastIndex(s, ":")
		if strings.TrimSuffix(s[i+1:], "/tcp") == strconv.Itoa(int(p)) {
			return true
		}
	}
	return false
}
