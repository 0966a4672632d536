package deploy_test

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/blobswarm/blobswarm/internal/registry/upstream"
)

// manifests is everything in deploy/kubernetes, decoded.
type manifests struct {
	namespaces  map[string]bool
	configMaps  map[string]*corev1.ConfigMap // by namespace/name
	secrets     map[string]*corev1.Secret
	services    map[string]*corev1.Service
	workloads   []workload
	objectNames map[string]string // kind/namespace/name -> file
}

// workload is the pod template of a Deployment or DaemonSet.
type workload struct {
	where     string
	namespace string
	pod       corev1.PodTemplateSpec
}

// decodeManifests reads every document of every YAML file in dir into its
// Kubernetes API type, refusing unknown fields and duplicate keys. Objects
// may be in a namespace some manifest creates, or in one of given (made
// by whoever installs them: helm --create-namespace).
func decodeManifests(t *testing.T, dir string, given ...string) manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no manifests in %s", dir)
	}
	ms := manifests{
		namespaces:  map[string]bool{},
		configMaps:  map[string]*corev1.ConfigMap{},
		secrets:     map[string]*corev1.Secret{},
		services:    map[string]*corev1.Service{},
		objectNames: map[string]string{},
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range splitYAML(b) {
			where := fmt.Sprintf("%s document %d", filepath.Base(file), i+1)
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			var (
				obj  any
				meta *metav1.ObjectMeta
			)
			switch tm.APIVersion + " " + tm.Kind {
			case "v1 Namespace":
				o := &corev1.Namespace{}
				obj, meta = o, &o.ObjectMeta
			case "v1 ConfigMap":
				o := &corev1.ConfigMap{}
				obj, meta = o, &o.ObjectMeta
			case "v1 Secret":
				o := &corev1.Secret{}
				obj, meta = o, &o.ObjectMeta
			case "v1 Service":
				o := &corev1.Service{}
				obj, meta = o, &o.ObjectMeta
			case "apps/v1 Deployment":
				o := &appsv1.Deployment{}
				obj, meta = o, &o.ObjectMeta
			case "apps/v1 DaemonSet":
				o := &appsv1.DaemonSet{}
				obj, meta = o, &o.ObjectMeta
			default:
				t.Fatalf("%s: no check for %q %q; add it to this test", where, tm.APIVersion, tm.Kind)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Fatalf("%s (%s): %v", where, tm.Kind, err)
			}
			key := tm.Kind + "/" + meta.Namespace + "/" + meta.Name
			if prev, dup := ms.objectNames[key]; dup {
				t.Errorf("%s: %s is also defined in %s", where, key, prev)
			}
			ms.objectNames[key] = where
			if meta.Name == "" {
				t.Errorf("%s: %s without a name", where, tm.Kind)
			}
			nsKey := meta.Namespace + "/" + meta.Name
			switch o := obj.(type) {
			case *corev1.Namespace:
				ms.namespaces[o.Name] = true
			case *corev1.ConfigMap:
				ms.configMaps[nsKey] = o
			case *corev1.Secret:
				ms.secrets[nsKey] = o
			case *corev1.Service:
				ms.services[nsKey] = o
			case *appsv1.Deployment:
				checkSelector(t, where, o.Spec.Selector, o.Spec.Template.Labels)
				ms.workloads = append(ms.workloads, workload{where, o.Namespace, o.Spec.Template})
			case *appsv1.DaemonSet:
				checkSelector(t, where, o.Spec.Selector, o.Spec.Template.Labels)
				ms.workloads = append(ms.workloads, workload{where, o.Namespace, o.Spec.Template})
			}
		}
	}
	for key, where := range ms.objectNames {
		kind, rest, _ := strings.Cut(key, "/")
		ns, _, _ := strings.Cut(rest, "/")
		if kind != "Namespace" && !ms.namespaces[ns] && !slices.Contains(given, ns) {
			t.Errorf("%s: %s is in namespace %q, which no manifest creates", where, key, ns)
		}
	}
	return ms
}

// splitYAML splits a multi-document YAML file at its "---" lines.
func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), b...), []byte("\n---\n")) {
		if len(bytes.TrimSpace(stripComments(d))) > 0 {
			docs = append(docs, d)
		}
	}
	return docs
}

func stripComments(b []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

func checkSelector(t *testing.T, where string, sel *metav1.LabelSelector, labels map[string]string) {
	t.Helper()
	if sel == nil || len(sel.MatchLabels) == 0 {
		t.Errorf("%s: no selector", where)
		return
	}
	for k, v := range sel.MatchLabels {
		if labels[k] != v {
			t.Errorf("%s: selector %s=%s does not match the pod template's labels %v", where, k, v, labels)
		}
	}
}

// TestKubernetesManifests decodes deploy/kubernetes strictly and checks
// that what the pods run exists: the image `make image` builds, binaries
// in it, their subcommands and flags, config files that decode into the
// server's config, probes on the port the server listens on, and tracker
// URLs that name a Service of these manifests.
func TestKubernetesManifests(t *testing.T) {
	checkManifests(t, "kubernetes", decodeManifests(t, "kubernetes"))
}

// checkManifests runs TestKubernetesManifests's checks on decoded
// manifests; name says where they came from. Containers of the images in
// others (Redis) are checked for resources only: what they run is not
// this repository's.
func checkManifests(t *testing.T, name string, ms manifests, others ...string) {
	t.Helper()
	image := makeImage(t)
	files, entrypoint := imageBinaries(t)
	servers := map[string]bool{}
	secrets := map[string][]string{}
	// The registries containerd is pointed at the mirror for, and what
	// each server's configuration allows.
	var pointed []string
	allows := map[string]*upstream.AllowList{}
	for _, w := range ms.workloads {
		spec := w.pod.Spec
		if len(spec.Containers) == 0 {
			t.Errorf("%s: no containers", w.where)
		}
		for _, v := range spec.Volumes {
			if cm := v.ConfigMap; cm != nil && ms.configMaps[w.namespace+"/"+cm.Name] == nil {
				t.Errorf("%s: volume %s names ConfigMap %s, which no manifest defines", w.where, v.Name, cm.Name)
			}
		}
		for i, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
			where := fmt.Sprintf("%s container %s", w.where, c.Name)
			if slices.Contains(others, c.Image) {
				if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
					t.Errorf("%s: no CPU and memory requests", where)
				}
				continue
			}
			if c.Image != image {
				t.Errorf("%s: image %q, want %q (what make image builds)", where, c.Image, image)
			}
			argv := append(append([]string{}, c.Command...), c.Args...)
			if len(c.Command) == 0 {
				argv = append([]string{entrypoint}, c.Args...)
			}
			if !files[argv[0]] {
				t.Errorf("%s: runs %s, which the image does not contain (Dockerfile prebuilt stage)", where, argv[0])
			}
			cl := parseCommand(t, where, argv)
			cl.check(t, where)
			if cl.binary == "mirrorctl" {
				for _, a := range argv {
					if r, ok := strings.CutPrefix(a, "--registry="); ok {
						pointed = append(pointed, r)
					}
				}
			}
			if l := c.Lifecycle; l != nil && l.PreStop != nil && l.PreStop.Exec != nil {
				hook := l.PreStop.Exec.Command
				if len(hook) == 0 || !files[hook[0]] {
					t.Errorf("%s: preStop runs %v, which the image does not contain", where, hook)
				} else {
					parseCommand(t, where+" preStop", hook).check(t, where+" preStop")
				}
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
				t.Errorf("%s: no CPU and memory requests", where)
			}
			if i < len(spec.InitContainers) || cl.binary != "blobswarm" || len(cl.words) == 0 {
				continue
			}
			sub := cl.words[0]
			servers[sub] = true
			cfg := podConfig(t, where, ms, w, c, cl, sub)
			allows[sub] = cfg.Allow
			checkServerPorts(t, where, c, cfg)
			checkTrackerURLs(t, where, ms, cfg)
			if src := secretKey(t, where, ms, w, c, cfg.SecretFile); src != "" {
				secrets[sub] = append(secrets[sub], src)
			}
		}
	}
	checkOneSecret(t, name, secrets)
	for _, sub := range []string{"mirror", "tracker"} {
		if !servers[sub] {
			t.Errorf("no workload runs blobswarm %s", sub)
			continue
		}
		for _, r := range pointed {
			if err := allows[sub].Check(r); err != nil {
				t.Errorf("containerd is pointed at the mirror for %s, which the %s's configuration refuses: %v", r, sub, err)
			}
		}
	}
	for key, svc := range ms.services {
		checkService(t, key, svc, ms.workloads)
	}
}

// podConfig finds the config file a server container is given with
// --config in the ConfigMap mounted there, and decodes it with the
// command line's flags applied on top.
func podConfig(t *testing.T, where string, ms manifests, w workload, c corev1.Container, cl commandLine, sub string) serverConfig {
	t.Helper()
	path, ok := cl.flags["config"]
	if !ok {
		t.Fatalf("%s: blobswarm %s without --config", where, sub)
	}
	var data []byte
	for _, m := range c.VolumeMounts {
		rel, err := filepath.Rel(m.MountPath, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		for _, v := range w.pod.Spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil {
				if cm := ms.configMaps[w.namespace+"/"+v.ConfigMap.Name]; cm != nil {
					s, ok := cm.Data[rel]
					if !ok {
						t.Fatalf("%s: --config=%s, but ConfigMap %s has no key %s", where, path, cm.Name, rel)
					}
					data = []byte(s)
				}
			}
		}
	}
	if data == nil {
		t.Fatalf("%s: --config=%s is not in a mounted ConfigMap", where, path)
	}
	cfg := decodeConfig(t, where+" "+path, sub, data)
	cfg.Listen = flagOr(cl, "listen", cfg.Listen)
	cfg.PeerListen = flagOr(cl, "peer-listen", cfg.PeerListen)
	cfg.Data = flagOr(cl, "data", cfg.Data)
	cfg.AnnounceURL = flagOr(cl, "announce-url", cfg.AnnounceURL)
	cfg.SecretFile = flagOr(cl, secretFlag(sub), cfg.SecretFile)
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == cfg.Data && !m.ReadOnly {
			mounted = true
		}
	}
	if !mounted {
		t.Errorf("%s: data directory %s is not a writable volume (the root filesystem may be read-only)", where, cfg.Data)
	}
	return cfg
}

// secretKey finds the Secret and key mounted at a container's path and
// returns them as namespace/name/key, or "" (with an error) when the path
// is no key of a Secret these manifests define.
func secretKey(t *testing.T, where string, ms manifests, w workload, c corev1.Container, path string) string {
	t.Helper()
	if path == "" {
		return ""
	}
	for _, m := range c.VolumeMounts {
		rel, err := filepath.Rel(m.MountPath, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		for _, v := range w.pod.Spec.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			sec := ms.secrets[w.namespace+"/"+v.Secret.SecretName]
			if sec == nil {
				t.Errorf("%s: volume %s names Secret %s, which no manifest defines", where, v.Name, v.Secret.SecretName)
				return ""
			}
			_, inData := sec.Data[rel]
			_, inString := sec.StringData[rel]
			if !inData && !inString {
				t.Errorf("%s: %s is not a key of Secret %s", where, path, sec.Name)
				return ""
			}
			return w.namespace + "/" + sec.Name + "/" + rel
		}
	}
	t.Errorf("%s: the fleet's secret %s is not in a mounted Secret", where, path)
	return ""
}

func port(t *testing.T, where, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: address %q: %v", where, addr, err)
	}
	n, err := strconv.ParseInt(p, 10, 32)
	if err != nil {
		t.Fatalf("%s: port of %q: %v", where, addr, err)
	}
	return int32(n)
}

// checkServerPorts checks that the container declares the ports the server
// listens on and probes /readyz and /healthz on the registry/API port.
func checkServerPorts(t *testing.T, where string, c corev1.Container, cfg serverConfig) {
	t.Helper()
	listen, peer := port(t, where, cfg.Listen), port(t, where, cfg.PeerListen)
	declared := map[int32]bool{}
	for _, p := range c.Ports {
		declared[p.ContainerPort] = true
	}
	for _, p := range []int32{listen, peer} {
		if !declared[p] {
			t.Errorf("%s: listens on %d, which is not among its ports", where, p)
		}
	}
	for _, pr := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
		if pr.probe == nil || pr.probe.HTTPGet == nil {
			t.Errorf("%s: no HTTP %s probe", where, pr.name)
			continue
		}
		g := pr.probe.HTTPGet
		if g.Path != pr.path {
			t.Errorf("%s: %s probe on %s, want %s", where, pr.name, g.Path, pr.path)
		}
		if got := containerPort(c, g.Port); got != listen {
			t.Errorf("%s: %s probe on port %s (%d), but the server listens on %d", where, pr.name, g.Port.String(), got, listen)
		}
		host, _, _ := net.SplitHostPort(cfg.Listen)
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() && g.Host != host {
			t.Errorf("%s: the server listens on %s only, but the %s probe goes to %q", where, host, pr.name, g.Host)
		}
	}
}

// containerPort resolves a port number or name of c.
func containerPort(c corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return -1
}

// checkTrackerURLs checks that the tracker URLs a mirror is given and the
// announce URL the tracker hands out name a Service of these manifests on
// one of its ports.
func checkTrackerURLs(t *testing.T, where string, ms manifests, cfg serverConfig) {
	t.Helper()
	urls := append([]string{}, cfg.Tracker...)
	if cfg.AnnounceURL != "" {
		urls = append(urls, cfg.AnnounceURL)
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		// <service>.<namespace>.svc[.cluster.local]
		parts := strings.Split(u.Hostname(), ".")
		if len(parts) < 3 || parts[2] != "svc" {
			t.Errorf("%s: %s is not a Service address (<name>.<namespace>.svc...)", where, raw)
			continue
		}
		svc := ms.services[parts[1]+"/"+parts[0]]
		if svc == nil {
			t.Errorf("%s: %s names Service %s/%s, which no manifest defines", where, raw, parts[1], parts[0])
			continue
		}
		p := port(t, where, u.Host)
		found := false
		for _, sp := range svc.Spec.Ports {
			found = found || sp.Port == p
		}
		if !found {
			t.Errorf("%s: %s uses port %d, which Service %s does not expose", where, raw, p, svc.Name)
		}
	}
}

// checkService checks that a Service selects a workload and that each of
// its target ports is a port of that workload's containers.
func checkService(t *testing.T, key string, svc *corev1.Service, workloads []workload) {
	t.Helper()
	ns, _, _ := strings.Cut(key, "/")
	for _, w := range workloads {
		if w.namespace != ns || !selects(svc.Spec.Selector, w.pod.Labels) {
			continue
		}
		for _, sp := range svc.Spec.Ports {
			found := false
			for _, c := range w.pod.Spec.Containers {
				target := sp.TargetPort
				if target.Type == intstr.Int && target.IntVal == 0 {
					target = intstr.FromInt32(sp.Port)
				}
				found = found || containerPort(c, target) > 0
			}
			if !found {
				t.Errorf("Service %s: port %s targets %s, which %s does not declare", key, sp.Name, sp.TargetPort.String(), w.where)
			}
		}
		return
	}
	t.Errorf("Service %s: selector %v matches no workload", key, svc.Spec.Selector)
}

func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
