package configure

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
)

const mirrorsKey = "registry-mirrors"

// Docker puts mirrorURL first in daemon.json's registry-mirrors, keeping
// the mirrors already listed after it and every other key as it was, in
// its place. Docker uses registry-mirrors for Docker Hub images only;
// other registries are pulled directly.
func Docker(o Options, mirrorURL string) (Result, error) {
	return o.editDaemonJSON(true, func(old []byte) ([]byte, error) { return mergeMirrors(old, mirrorURL) })
}

// editDaemonJSON rewrites daemon.json by edit, backing it up; a file that
// is not there is edited from nothing when create is set, and else left.
func (o Options) editDaemonJSON(create bool, edit func([]byte) ([]byte, error)) (Result, error) {
	path := o.DaemonJSON()
	old, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !create:
		fmt.Fprintf(o.out(), "%s: not there, nothing to undo\n", path)
		return Result{Path: path, Unchanged: true}, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return Result{Path: path}, fmt.Errorf("read %s: %w", path, err)
	}
	content, err := edit(old)
	if err != nil {
		return Result{Path: path}, fmt.Errorf("%s: %w; nothing was written", path, err)
	}
	res, err := o.apply([]pending{{path: path, content: content}})
	if err != nil {
		return Result{Path: path}, err
	}
	return res[0], nil
}

// member is one top-level key of daemon.json with its value as written.
type member struct {
	key   string
	value json.RawMessage
}

// mergeMirrors returns daemon.json with mirrorURL first among the mirrors.
func mergeMirrors(old []byte, mirrorURL string) ([]byte, error) {
	return editMirrors(old, func(m []string) []string {
		return append([]string{mirrorURL}, slices.DeleteFunc(m, func(s string) bool { return s == mirrorURL })...)
	})
}

// editMirrors returns daemon.json with registry-mirrors changed by edit;
// an empty list drops the key. The object is read member by member, so key
// order and every other value's bytes survive; only the indentation is made
// uniform.
func editMirrors(old []byte, edit func([]string) []string) ([]byte, error) {
	members, err := parseObject(old)
	if err != nil {
		return nil, err
	}
	i, mirrors, err := mirrorsOf(members)
	if err != nil {
		return nil, err
	}
	mirrors = edit(mirrors)
	value, err := json.Marshal(mirrors)
	if err != nil {
		return nil, err
	}
	switch {
	case len(mirrors) == 0 && i >= 0:
		members = slices.Delete(members, i, i+1)
	case len(mirrors) == 0:
	case i >= 0:
		members[i].value = value
	default:
		members = append(members, member{key: mirrorsKey, value: value})
	}
	var b bytes.Buffer
	b.WriteString("{")
	for n, m := range members {
		if n > 0 {
			b.WriteString(",")
		}
		key, _ := json.Marshal(m.key)
		b.WriteString("\n  ")
		b.Write(key)
		b.WriteString(": ")
		if err := json.Indent(&b, m.value, "  ", "  "); err != nil {
			return nil, err
		}
	}
	if len(members) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
}

// parseObject splits a JSON object into its members in file order. An
// empty file is an empty object, as dockerd reads it.
func parseObject(data []byte) ([]member, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object")
	}
	var members []member
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("invalid JSON: %w", err)
		}
		key, _ := t.(string)
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, fmt.Errorf("invalid JSON at key %q: %w", key, err)
		}
		if seen[key] {
			return nil, fmt.Errorf("key %q appears twice", key)
		}
		seen[key] = true
		members = append(members, member{key: key, value: value})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("invalid JSON: data after the object")
	}
	return members, nil
}
