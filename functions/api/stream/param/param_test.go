package param

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestNegotiate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		accept string
		want   Format
	}{
		{"", NDJSON},
		{"*/*", NDJSON},
		{"application/json", NDJSON},
		{"application/x-ndjson", NDJSON},
		{"text/event-stream", SSE},
		{"text/event-stream; charset=utf-8", SSE},
		{"application/json;q=0.5, text/event-stream", SSE},
		{"text/event-stream;q=0.2, application/json;q=0.9", NDJSON},
		{"text/html, text/event-stream", SSE},
		{"text/html", 0},
		{"image/png, text/plain", 0},
		{"application/json;q=2", 0},
		{"text/event-stream;q=0", 0},
		{strings.Repeat("a", maxAcceptLen+1), 0},
	}
	for _, c := range cases {
		got, err := Negotiate(c.accept)
		if c.want == 0 {
			if !errors.Is(err, ErrNotAcceptable) {
				t.Errorf("Negotiate(%q) = %v, %v; want ErrNotAcceptable", c.accept, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Negotiate(%q) = %v, %v; want %v", c.accept, got, err, c.want)
		}
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, query string
		ok          bool
		ping        time.Duration
		str         string
	}{
		{"empty", "", true, 0, ""},
		{"repeated and commas", "device_ids=a,b&device_ids=c&device_ids=", true, 0, "device_ids=a,b,c"},
		{"types", "device_types=temperature,touch&event_types=temperature", true, 0, "device_types=temperature,touch event_types=temperature"},
		{"labels", "label_filters=room=1&label_filters=floor", true, 0, "label_filters=floor,room=1"},
		{"label value with =", "label_filters=k=a=b", true, 0, "label_filters=k=a=b"},
		{"ping", "ping_interval=10s", true, 10 * time.Second, ""},
		{"ping too short", "ping_interval=10ms", false, 0, ""},
		{"ping too long", "ping_interval=2h", false, 0, ""},
		{"ping garbage", "ping_interval=ten", false, 0, ""},
		{"ping twice", "ping_interval=10s&ping_interval=20s", false, 0, ""},
		{"unknown event type", "event_types=temprature", false, 0, ""},
		{"bad device id", "device_ids=a/b", false, 0, ""},
		{"bad label key", "label_filters=a b", false, 0, ""},
		{"empty label key", "label_filters==x", false, 0, ""},
		{"control in label value", "label_filters=k=a%0Ab", false, 0, ""},
		{"other params ignored", "access_token=x&foo=bar", true, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			q, err := url.ParseQuery(c.query)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Parse(q)
			if c.ok != (err == nil) {
				t.Fatalf("Parse(%q) error %v, want ok=%v", c.query, err, c.ok)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("error %v does not wrap ErrInvalid", err)
				}
				return
			}
			if p.PingInterval != c.ping || p.Filter.String() != c.str {
				t.Fatalf("Parse(%q) = ping %v filter %q; want %v %q", c.query, p.PingInterval, p.Filter.String(), c.ping, c.str)
			}
		})
	}
}

func TestTooManyValues(t *testing.T) {
	t.Parallel()
	ids := make([]string, maxValues+1)
	for i := range ids {
		ids[i] = "d" + strings.Repeat("x", i%10)
	}
	if _, err := Parse(url.Values{"device_ids": {strings.Join(ids, ",")}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Parse of %d ids: %v", len(ids), err)
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	q, _ := url.ParseQuery("device_ids=d1,d2&event_types=temperature,touch&device_types=temperature&label_filters=room=a,floor")
	p, err := Parse(q)
	if err != nil {
		t.Fatal(err)
	}
	f := p.Filter
	if !f.NeedsDevice() {
		t.Fatal("NeedsDevice false")
	}
	events := []struct {
		dev, typ string
		want     bool
	}{{"d1", "temperature", true}, {"d2", "touch", true}, {"d3", "temperature", false}, {"d1", "humidity", false}}
	for _, e := range events {
		if got := f.MatchEvent(e.dev, e.typ); got != e.want {
			t.Errorf("MatchEvent(%s, %s) = %v", e.dev, e.typ, got)
		}
	}
	devices := []struct {
		typ    string
		labels map[string]string
		want   bool
	}{
		{"temperature", map[string]string{"room": "a", "floor": "3"}, true},
		{"temperature", map[string]string{"room": "b", "floor": "3"}, false},
		{"temperature", map[string]string{"room": "a"}, false},
		{"touch", map[string]string{"room": "a", "floor": ""}, false},
		{"", nil, false},
	}
	for _, d := range devices {
		if got := f.MatchDevice(d.typ, d.labels); got != d.want {
			t.Errorf("MatchDevice(%s, %v) = %v", d.typ, d.labels, got)
		}
	}
	var all Filter
	if !all.MatchEvent("x", "y") || !all.MatchDevice("", nil) || all.NeedsDevice() {
		t.Fatal("the zero filter must select everything")
	}
}

// FuzzParse: no query panics; an accepted one describes itself in a form
// that parses back to the same filter.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"device_ids=a,b&device_ids=c", "label_filters=room=1&label_filters=floor", "ping_interval=10s",
		"event_types=temperature,touch", "device_types=ccon", "label_filters==", "ping_interval=1e9h",
		"last_event_id=v1.AAAAAAAAAAE", "device_ids=%00", "label_filters=a=b,c=d=e",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := url.ParseQuery(s)
		if err != nil {
			return
		}
		p, err := Parse(q)
		if err != nil {
			return
		}
		if p.PingInterval != 0 && (p.PingInterval < MinPing || p.PingInterval > MaxPing) {
			t.Fatalf("ping %v out of bounds", p.PingInterval)
		}
		desc := p.Filter.String()
		again, err := Parse(values(p.Filter))
		if err != nil || again.Filter.String() != desc {
			t.Fatalf("description %q does not parse back: %v %q", desc, err, again.Filter.String())
		}
	})
}

// FuzzNegotiate: no Accept header panics.
func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"", "*/*", "text/event-stream", "application/json;q=0.5, text/event-stream;q=0.6", "a/b;q=", ";;,,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fm, err := Negotiate(s)
		if err == nil && fm != NDJSON && fm != SSE {
			t.Fatalf("Negotiate(%q) = %v", s, fm)
		}
	})
}

// values turns a Filter back into query values.
func values(f Filter) url.Values {
	q := url.Values{}
	for name, set := range map[string]map[string]struct{}{"device_ids": f.deviceIDs, "device_types": f.deviceTypes, "event_types": f.eventTypes} {
		for v := range set {
			q.Add(name, v)
		}
	}
	for _, l := range f.labels {
		q.Add("label_filters", l.String())
	}
	return q
}
