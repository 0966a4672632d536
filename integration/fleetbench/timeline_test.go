package fleetbench

import (
	"context"
	"encoding/csv"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// At 100 Mbit/s a link carries 12.5 MB/s: 2.5 MB per 200 ms interval.
const full = 2.5e6

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// hostPoints: nothing until 0.4 s, then intervals at 100%, 100%, 40%, 0%
// and 100% of the link, done at 1.4 s, read once more at 1.6 s.
func hostPoints() []Point {
	recv := []float64{0, 0, 0, full, 2 * full, 2*full + 1e6, 2*full + 1e6, 3*full + 1e6, 3*full + 1e6}
	pts := make([]Point, len(recv))
	for i, r := range recv {
		pts[i] = Point{T: ms(200 * i), Received: r, Uploaded: 7}
	}
	return pts
}

func TestHostActivity(t *testing.T) {
	a, ok := hostActivity(hostPoints(), ms(1400), 100e6)
	if !ok {
		t.Fatal("a host that received 8.5 MB counts as having received nothing")
	}
	// 8.5 MB from 0.4 s to 1.4 s at 12.5 MB/s is 68%; the five whole
	// intervals inside are 100, 100, 40, 0 and 100% of the link.
	want := Activity{From: ms(400), To: ms(1400), Bytes: 8.5e6, Rate: 0.68, Busy: 0.6, Idle: 0.2, Intervals: 5}
	if a.From != want.From || a.To != want.To || a.Intervals != want.Intervals ||
		!near(a.Bytes, want.Bytes) || !near(a.Rate, want.Rate) || !near(a.Busy, want.Busy) || !near(a.Idle, want.Idle) {
		t.Errorf("hostActivity = %+v, want %+v", a, want)
	}
	// Done between two readings: the interval that straddles it does not count.
	if a, _ := hostActivity(hostPoints(), ms(1300), 100e6); a.Intervals != 4 || !near(a.Busy, 0.5) || !near(a.Idle, 0.25) {
		t.Errorf("done at 1.3 s: %d intervals, busy %v, idle %v; want 4, 0.5, 0.25", a.Intervals, a.Busy, a.Idle)
	}
	// Half the first interval's worth: the first byte was at 0.1 s
	// at the latest, and the one whole interval after it was busy.
	pts := []Point{{T: 0}, {T: ms(200), Received: full / 2}, {T: ms(400), Received: 1.5 * full}}
	if a, _ := hostActivity(pts, ms(400), 100e6); a.From != ms(100) || !near(a.Rate, 1) || a.Intervals != 1 || a.Busy != 1 {
		t.Errorf("half an interval's bytes at 0.2 s: %+v, want from 0.1 s at 100%% of the link, 1 busy interval", a)
	}
	if _, ok := hostActivity([]Point{{T: 0}, {T: ms(200)}}, ms(200), 100e6); ok {
		t.Error("a host that received nothing has an activity")
	}
}

func TestSeederActivity(t *testing.T) {
	up := []float64{0, 0, full, 1.5 * full, 1.5 * full, 1.5 * full}
	pts := make([]Point, len(up))
	for i, u := range up {
		pts[i] = Point{T: ms(200 * i), Uploaded: u}
	}
	a, ok := seederActivity(pts, 100e6)
	// Sending from 0.2 s to 0.6 s: 3.75 MB in 0.4 s is 75% of the link,
	// one interval at 100% and one at 50%.
	if !ok || a.From != ms(200) || a.To != ms(600) || !near(a.Bytes, 3.75e6) || !near(a.Rate, 0.75) ||
		a.Intervals != 2 || !near(a.Busy, 0.5) || a.Idle != 0 {
		t.Errorf("seederActivity = %+v, %v; want 0.2-0.6 s, 3.75 MB, rate 0.75, busy 0.5 of 2 intervals", a, ok)
	}
}

func TestRates(t *testing.T) {
	pts := []Point{{T: 0}, {T: ms(200), Received: full}, {T: ms(400), Received: 2 * full}, {T: ms(600), Received: 2 * full}}
	got := rates(pts, received, 3)
	// Windows [0, 0.2], [0, 0.4], [0, 0.6]: 100, 100 and 66.7 Mbit/s.
	want := [][2]float64{{0.1, 100}, {0.2, 100}, {0.3, 200.0 / 3}}
	if len(got) != len(want) {
		t.Fatalf("rates = %v, want %v", got, want)
	}
	for i, w := range want {
		if !near(got[i].X, w[0]) || math.Abs(got[i].Y-w[1]) > 1e-6 {
			t.Errorf("rate %d = %v, want %v", i, got[i], w)
		}
	}
}

func TestTimelineSummaryAndCSV(t *testing.T) {
	c := Defaults().WithDefaults()
	c.Nodes = 2
	late := hostPoints()
	for i := range late {
		late[i].T += ms(200)
	}
	tl := Timeline{
		Hosts:  []Series{{Name: "h1", Points: hostPoints()}, {Name: "h2", Points: late}},
		Seeder: Series{Name: "seeder", Points: []Point{{T: 0}, {T: ms(200), Uploaded: full}, {T: ms(400), Uploaded: full}}},
		Rounds: 9,
	}
	run := TimelineRun{Timeline: tl, Result: ModeResult{Mode: Swarm, Run: 1,
		Hosts: []HostResult{{Name: "h1", Done: ms(1400)}, {Name: "h2", Done: ms(1600)}}}}
	var out strings.Builder
	writeTimelineSummary(&out, c, run)
	for _, want := range []string{
		"h1           0.40 s   1.40 s        68%    60%    20%         5",
		"h2           0.60 s   1.60 s        68%    60%    20%         5",
		"seeder   sent 2.4 MiB from 0.00 s to 0.20 s: mean 100% of the tracker host's link",
		"mean         0.50 s   1.50 s        68%    60%    20%",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, out.String())
		}
	}

	var buf strings.Builder
	if err := writeTimelineCSV(&buf, tl); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(strings.NewReader(buf.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+9+9+3 || strings.Join(rows[0], ",") != "t_seconds,host,received_bytes,uploaded_bytes" {
		t.Fatalf("CSV has %d rows, header %v; want 22 rows of t_seconds,host,received_bytes,uploaded_bytes", len(rows), rows[0])
	}
	if got := strings.Join(rows[len(rows)-1], ","); got != "1.800,h2,8500000,7" {
		t.Errorf("last CSV row %q, want h2's reading at 1.8 s", got)
	}
}

// TestSampler reads two mirrors and a tracker over loopback: every
// reading sums the received bytes over their sources, and a dead
// endpoint counts as failed scrapes without stopping the others.
func TestSampler(t *testing.T) {
	var hits atomic.Int64
	mirror := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := hits.Add(1)
		fmt.Fprintf(w, "# TYPE %[1]s counter\n%[1]s{source=\"peers\"} %[3]d\n%[1]s{source=\"seeder\"} %[4]d\n%[1]s{source=\"origin\"} 0\n"+
			"# TYPE %[2]s counter\n%[2]s %[5]d\n# TYPE blobswarm_mirror_served_bytes_total counter\nblobswarm_mirror_served_bytes_total 999\n",
			mirrorReceivedMetric, mirrorUploadedMetric, 1000*n, 500*n, 10*n)
	}))
	defer mirror.Close()
	tracker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "# TYPE %[1]s counter\n%[1]s 7\n", seederUploadedMetric)
	}))
	defer tracker.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()

	client := &http.Client{Timeout: time.Second}
	t0 := time.Now().Add(50 * time.Millisecond)
	s := StartSampler(context.Background(), t0, []Target{
		{Name: "h1", URL: mirror.URL + "/metrics", Client: client},
		{Name: "h2", URL: dead.URL + "/metrics", Client: client},
	}, &Target{Name: "seeder", URL: tracker.URL + "/metrics", Client: client})
	time.Sleep(time.Until(t0) + 3*TimelineEvery + TimelineEvery/2)
	tl, err := s.Stop()

	h1 := tl.Hosts[0].Points
	if tl.Rounds < 4 || len(h1) != tl.Rounds {
		t.Fatalf("%d rounds, %d readings of h1 in 0.7 s of sampling every %s, want at least 4, one per round", tl.Rounds, len(h1), TimelineEvery)
	}
	for i, p := range h1 {
		// Received counts peers and seeder: 1500 per hit, 150 times the 10 uploaded.
		if p.Received <= 0 || p.Received != 150*p.Uploaded {
			t.Errorf("reading %d: received %v, uploaded %v; want received = 150 x uploaded > 0", i, p.Received, p.Uploaded)
		}
		if i > 0 && (p.T <= h1[i-1].T || p.Received <= h1[i-1].Received) {
			t.Errorf("reading %d at %s with %v bytes does not follow %s with %v", i, p.T, p.Received, h1[i-1].T, h1[i-1].Received)
		}
	}
	if h1[0].T < 0 || h1[0].T > TimelineEvery {
		t.Errorf("first reading at %s after the start, want within one interval", h1[0].T)
	}
	if last := h1[len(h1)-1].T; last < 3*TimelineEvery {
		t.Errorf("last reading at %s: Stop did not read once more", last)
	}
	if sp := tl.Seeder.Points; len(sp) != tl.Rounds || sp[0].Uploaded != 7 || sp[0].Received != 0 {
		t.Errorf("seeder readings %v, want %d of 7 uploaded bytes", sp, tl.Rounds)
	}
	if len(tl.Hosts[1].Points) != 0 || tl.Errors != tl.Rounds || err == nil || !strings.Contains(err.Error(), "h2") {
		t.Errorf("dead h2: %d readings, %d errors in %d rounds, err %v; want none, one per round, an error naming h2",
			len(tl.Hosts[1].Points), tl.Errors, tl.Rounds, err)
	}
}
