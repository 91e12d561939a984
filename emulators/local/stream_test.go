package local_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealedsense/sealedsense/emulators/local"
	"github.com/sealedsense/sealedsense/emulators/local/localtest"
	"github.com/sealedsense/sealedsense/shared/devicetype"
)

// streamClient reads devices:stream as a DT client does, NDJSON or SSE,
// and remembers the id of the last frame so it can resume.
type streamClient struct {
	t       *testing.T
	d       *local.Deployment
	tok     string
	query   url.Values
	sse     bool
	mu      sync.Mutex
	got     []streamEvent
	lastID  string
	errors  []string
	cancel  context.CancelFunc
	done    chan struct{}
	attempt int
}

type streamEvent struct {
	ID, Type, Device string
}

func newStreamClient(t *testing.T, d *local.Deployment, tok string, query url.Values, sse bool) *streamClient {
	return &streamClient{t: t, d: d, tok: tok, query: query, sse: sse}
}

// open connects, resuming after the last id seen, and reads in the
// background until kill or the server ends the stream.
func (c *streamClient) open() {
	c.t.Helper()
	q := url.Values{}
	for k, v := range c.query {
		q[k] = v
	}
	c.mu.Lock()
	last := c.lastID
	c.attempt++
	c.mu.Unlock()
	if last != "" && !c.sse {
		q.Set("last_event_id", last)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+c.d.FunctionsAddr+"/v2/projects/demo/devices:stream?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+c.tok)
	if c.sse {
		req.Header.Set("Accept", "text/event-stream")
		if last != "" {
			req.Header.Set("Last-Event-ID", last)
		}
	} else {
		req.Header.Set("Accept", "application/json")
	}
	var resp *http.Response
	var err error
	deadline := time.Now().Add(30 * time.Second)
	for {
		// Reconnecting with backoff, as DT's clients do: the server may
		// be restarting.
		if resp, err = http.DefaultClient.Do(req); err == nil && resp.StatusCode == 200 {
			break
		}
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		if time.Now().After(deadline) {
			cancel()
			c.t.Fatalf("stream did not open: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	c.cancel, c.done = cancel, make(chan struct{})
	go func() {
		defer close(c.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		id := ""
		for sc.Scan() {
			line := sc.Text()
			data := line
			if c.sse {
				switch {
				case strings.HasPrefix(line, "id:"):
					id = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
					continue
				case strings.HasPrefix(line, "data:"):
					data = strings.TrimSpace(strings.TrimPrefix(line, "data:"))
				default:
					continue
				}
			}
			var f struct {
				Result *struct {
					Event struct {
						EventID    string `json:"eventId"`
						EventType  string `json:"eventType"`
						TargetName string `json:"targetName"`
					} `json:"event"`
				} `json:"result"`
				Error *struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				} `json:"error"`
			}
			if json.Unmarshal([]byte(data), &f) != nil {
				continue
			}
			c.mu.Lock()
			switch {
			case f.Error != nil:
				c.errors = append(c.errors, fmt.Sprintf("%d %s", f.Error.Code, f.Error.Message))
			case f.Result != nil:
				ev := f.Result.Event
				if c.sse && id != ev.EventID {
					c.errors = append(c.errors, "SSE id "+id+" is not the eventId "+ev.EventID)
				}
				c.lastID = ev.EventID
				if ev.EventType != "ping" {
					c.got = append(c.got, streamEvent{ID: ev.EventID, Type: ev.EventType, Device: ev.TargetName[strings.LastIndex(ev.TargetName, "/")+1:]})
				}
			}
			c.mu.Unlock()
		}
	}()
}

// kill drops the connection, as a network failure would.
func (c *streamClient) kill() {
	c.cancel()
	<-c.done
}

func (c *streamClient) events() []streamEvent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

// projectEvents lists the demo project's events stored in [from, to).
func projectEvents(t *testing.T, d *local.Deployment, from, to time.Time) map[string]streamEvent {
	t.Helper()
	docs, err := d.FS.Collection("events").Where("projectId", "==", "demo").Where("storedAt", ">=", from).Where("storedAt", "<", to).Documents(t.Context()).GetAll()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]streamEvent{}
	for _, doc := range docs {
		out[doc.Ref.ID] = streamEvent{ID: doc.Ref.ID, Type: doc.Data()["eventType"].(string), Device: doc.Data()["deviceId"].(string)}
	}
	return out
}

// TestStreamEndToEnd: events from the simulator reach NDJSON and SSE
// streams; filters select exactly the right events; and a client that is
// cut off three times, and then sees the functions server restart,
// resumes each time with the last id and ends with every event once.
func TestStreamEndToEnd(t *testing.T) {
	t.Parallel()
	// Each reconnection reaches another of three instances: the stream
	// resumes from its cursor, whichever instance serves it.
	d := localtest.Start(t, local.Config{Sensors: 6, Connectors: 2, Instances: 3})
	tok := localtest.CustomerToken(t, d)
	devices := d.Devices()
	slices.Sort(devices)
	chosen := devices[:2]

	all := newStreamClient(t, d, tok, url.Values{"ping_interval": {"2s"}}, false)
	sse := newStreamClient(t, d, tok, url.Values{"ping_interval": {"2s"}}, true)
	typeOf := map[string]string{}
	for _, dev := range devices {
		snap, err := d.FS.Collection("devices").Doc(dev).Get(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		typeOf[dev] = snap.Data()["type"].(string)
	}
	// Every sensor reading's event type: the chosen devices' readings
	// match, whatever their types. DT's clients send repeated and
	// comma-separated values alike.
	var readings []string
	for _, typ := range devicetype.All() {
		for _, e := range typ.Events {
			if typ.Sensor && e != "batteryStatus" && e != "networkStatus" && !slices.Contains(readings, e) {
				readings = append(readings, e)
			}
		}
	}
	filtered := newStreamClient(t, d, tok, url.Values{"device_ids": {chosen[0] + "," + chosen[1]}, "event_types": append([]string{strings.Join(readings[:3], ",")}, readings[3:]...)}, false)
	chosenType := typeOf[chosen[0]]
	byType := newStreamClient(t, d, tok, url.Values{"device_types": {chosenType}}, false)
	for _, c := range []*streamClient{all, sse, filtered, byType} {
		c.open()
	}
	from := time.Now().Add(2 * time.Second) // the streams' live start has settled

	for i := range 3 {
		time.Sleep(4 * time.Second)
		for _, c := range []*streamClient{all, sse} {
			c.kill()
			c.open()
		}
		t.Logf("kill %d: %d events so far", i+1, len(all.events()))
	}
	time.Sleep(3 * time.Second)
	d.KillFunctions()
	for _, c := range []*streamClient{all, sse, filtered, byType} {
		<-c.done // the server's end closes every stream
	}
	time.Sleep(2 * time.Second)
	if err := d.StartFunctions(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*streamClient{all, sse, filtered, byType} {
		c.open()
	}
	time.Sleep(6 * time.Second)
	drain(t, d)
	to := time.Now()
	time.Sleep(3 * time.Second) // the last events settle and reach the streams
	for _, c := range []*streamClient{all, sse, filtered, byType} {
		c.kill()
	}

	want := projectEvents(t, d, from, to)
	if len(want) < 20 {
		t.Fatalf("only %d events in the window", len(want))
	}
	check := func(name string, c *streamClient, keep func(streamEvent) bool) {
		t.Helper()
		seen := map[string]int{}
		for _, e := range c.events() {
			seen[e.ID]++
			if seen[e.ID] == 2 {
				t.Errorf("%s: event %s received twice", name, e.ID)
			}
			if !keep(e) {
				t.Errorf("%s: event %s (%s of %s) does not match the filters", name, e.ID, e.Type, e.Device)
			}
		}
		n := 0
		for id, e := range want {
			if !keep(e) {
				continue
			}
			n++
			if seen[id] == 0 {
				t.Errorf("%s: event %s (%s) was never received", name, id, e.Type)
			}
		}
		c.mu.Lock()
		for _, e := range c.errors {
			if !strings.HasPrefix(e, "503") {
				t.Errorf("%s: error frame %s", name, e)
			}
		}
		c.mu.Unlock()
		if n == 0 {
			t.Errorf("%s: no event in the window matches; the check proves nothing", name)
		}
		t.Logf("%s: %d events expected, %d received, over %d connections", name, n, len(c.events()), c.attempt)
	}
	check("ndjson, cut 3 times and across a restart", all, func(streamEvent) bool { return true })
	check("sse, cut 3 times and across a restart", sse, func(streamEvent) bool { return true })
	check("device_ids and event_types", filtered, func(e streamEvent) bool {
		return slices.Contains(chosen, e.Device) && slices.Contains(readings, e.Type)
	})
	check("device_types", byType, func(e streamEvent) bool { return typeOf[e.Device] == chosenType })
}
