package api_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/sealedsense/sealedsense/emulators/platform"
	"github.com/sealedsense/sealedsense/emulators/platform/platformtest"
	"github.com/sealedsense/sealedsense/emulators/stack"
	"github.com/sealedsense/sealedsense/functions/api"
	"github.com/sealedsense/sealedsense/functions/ingest"
	"github.com/sealedsense/sealedsense/shared/relay"
	"github.com/sealedsense/sealedsense/shared/store"
)

// connectorSite is a Cloud Connector registered into a project, whose
// heartbeats an in-process ingest turns into events in the world's
// Firestore, as the deployed ingest does.
type connectorSite struct {
	w   *world
	id  string
	key ed25519.PrivateKey
	svc *ingest.Service
}

func (w *world) connector(project string) *connectorSite {
	w.t.Helper()
	ctx := context.Background()
	ps := platformtest.PubSub(w.t, w.project)
	for _, topic := range []string{stack.TopicEvents, stack.TopicDownlinks} {
		if err := platform.EnsureTopic(ctx, ps, topic); err != nil {
			w.t.Fatal(err)
		}
	}
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	id := fmt.Sprintf("ccon-%d", time.Now().UnixNano()%1e9)
	if err := w.reg.RegisterConnector(ctx, id, "Roof", project, pub); err != nil {
		w.t.Fatal(err)
	}
	svc := ingest.New(ingest.Config{}, ingest.Deps{Firestore: w.fs, Registry: w.reg, Events: ps.Publisher(stack.TopicEvents),
		Downlinks: ps.Publisher(stack.TopicDownlinks), Logger: slog.New(slog.DiscardHandler)})
	return &connectorSite{w: w, id: id, key: key, svc: svc}
}

// heartbeat makes the connector report st.
func (c *connectorSite) heartbeat(st relay.Status) {
	c.w.t.Helper()
	st.ConnectorID = c.id
	env, err := relay.SignStatus(c.key, st)
	if err != nil {
		c.w.t.Fatal(err)
	}
	e := event.New()
	e.SetID(fmt.Sprint(time.Now().UnixNano()))
	e.SetType("google.cloud.pubsub.topic.v1.messagePublished")
	e.SetSource("//pubsub.googleapis.com/projects/" + c.w.project + "/topics/connector-status")
	body, _ := json.Marshal(map[string]any{"message": map[string]any{"data": env, "messageId": "m"}})
	_ = e.SetData("application/json", body)
	if err := c.svc.Handle(context.Background(), e); err != nil {
		c.w.t.Fatalf("heartbeat: %v", err)
	}
}

// streamTypes opens an NDJSON stream with query and sends the type of
// each event it carries, pings left out.
func (w *world) streamTypes(project, query, auth string) <-chan string {
	w.t.Helper()
	req, _ := http.NewRequest("GET", w.base+"/v2/projects/"+project+"/devices:stream?ping_interval=1s&"+query, nil)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		resp.Body.Close()
		w.t.Fatalf("stream with %s: %d", query, resp.StatusCode)
	}
	w.t.Cleanup(func() { resp.Body.Close() })
	types := make(chan string, 100)
	go func() {
		defer close(types)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var f frame
			if json.Unmarshal(sc.Bytes(), &f) == nil && f.Result != nil && f.Result.Event.EventType != "ping" {
				types <- f.Result.Event.EventType
			}
		}
	}()
	return types
}

// TestConnectorIsADevice: a Cloud Connector is listed, read and filtered
// as a device of type ccon with its reported statuses, its status events
// are its history and reach a stream filtered on them; another project
// does not see it, and it is not claimed, transferred or configured.
func TestConnectorIsADevice(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p := w.tenant.Project
	q := w.newProject(w.tenant.Organization, "Other")
	sensors := w.devices(p, "", 2)
	cc := w.connector(p)
	pp := "/v2/projects/" + p
	dev := w.account(p, "roles/project.developer")
	stream := w.streamTypes(p, "device_types=ccon&event_types=ethernetStatus,cellularStatus", "Bearer "+dev.token())

	at := time.Now().UTC()
	cc.heartbeat(relay.Status{Time: at, Connection: relay.ConnectionEthernet,
		Ethernet: &relay.Link{Up: true, MACAddress: "02:00:5e:10:00:01"}, Cellular: &relay.Link{Up: true, SignalStrength: 55}})
	cc.heartbeat(relay.Status{Time: at.Add(time.Second), Connection: relay.ConnectionEthernet,
		Ethernet: &relay.Link{Up: true, MACAddress: "02:00:5e:10:00:01"}, Cellular: &relay.Link{Up: true, SignalStrength: 58}})

	names := func(path string) []string {
		l := must[struct{ Devices []api.Device }](t, 200)(dev.call("GET", path, nil))
		var out []string
		for _, d := range l.Devices {
			out = append(out, d.Name[strings.LastIndex(d.Name, "/")+1:])
		}
		slices.Sort(out)
		return out
	}
	all := append(slices.Clone(sensors), cc.id)
	slices.Sort(all)
	for query, want := range map[string][]string{"": all, "?device_types=ccon": {cc.id}, "?device_types=temperature": slices.Sorted(slices.Values(sensors))} {
		if got := names(pp + "/devices" + query); !slices.Equal(got, want) {
			t.Errorf("devices%s: %v, want %v", query, got, want)
		}
	}

	d := must[api.Device](t, 200)(dev.call("GET", pp+"/devices/"+cc.id, nil))
	if d.Name != "projects/"+p+"/devices/"+cc.id || d.Type != store.ConnectorType || d.ProductNumber != store.ConnectorProductNumber {
		t.Fatalf("device %+v, want %s of type ccon", d, cc.id)
	}
	conn, _ := d.Reported["connectionStatus"].(map[string]any)
	eth, _ := d.Reported["ethernetStatus"].(map[string]any)
	cell, _ := d.Reported["cellularStatus"].(map[string]any)
	if conn["connection"] != "ETHERNET" || eth["macAddress"] != "02:00:5e:10:00:01" || eth["ipAddress"] != "" || cell["signalStrength"] != 55.0 {
		t.Fatalf("reported %v, want ETHERNET, the MAC address with no IP address, and signal 55", d.Reported)
	}

	type history struct {
		Events []struct {
			EventType string `json:"eventType"`
		}
	}
	types := func(path string) []string {
		var out []string
		for _, e := range must[history](t, 200)(dev.call("GET", path, nil)).Events {
			out = append(out, e.EventType)
		}
		slices.Sort(out)
		return out
	}
	evp := pp + "/devices/" + cc.id + "/events"
	if got := types(evp); !slices.Equal(got, []string{"cellularStatus", "connectionStatus", "ethernetStatus"}) {
		t.Errorf("history %v, want one event of each status", got)
	}
	if got := types(evp + "?eventTypes=ethernetStatus,cellularStatus"); !slices.Equal(got, []string{"cellularStatus", "ethernetStatus"}) {
		t.Errorf("history of ethernetStatus and cellularStatus: %v", got)
	}
	var streamed []string
	for len(streamed) < 2 {
		select {
		case typ := <-stream:
			streamed = append(streamed, typ)
		case <-time.After(30 * time.Second):
			t.Fatalf("the stream filtered on ccon's link events carried %v", streamed)
		}
	}
	if slices.Sort(streamed); !slices.Equal(streamed, []string{"cellularStatus", "ethernetStatus"}) {
		t.Errorf("streamed %v", streamed)
	}
	must[map[string]any](t, 200)(dev.call("POST", pp+"/dataconnectors", map[string]any{"events": []string{"connectionStatus", "ethernetStatus", "cellularStatus"},
		"httpConfig": map[string]any{"url": "https://hooks.example.com/ccon"}}))

	for _, path := range []string{"/v2/projects/" + q + "/devices/" + cc.id, "/v2/projects/" + q + "/devices/" + cc.id + "/events"} {
		if code, b := w.admin.call("GET", path, nil); code != 404 {
			t.Errorf("GET %s from another project: %d %s, want 404", path, code, b)
		}
	}
	t.Run("refused", func(t *testing.T) { refuseSensorPaths(t, w, cc.id, p, q) })
}

// refuseSensorPaths: what only a sensor takes is refused for connector
// id of project p, and it stays p's, unconfigured.
func refuseSensorPaths(t *testing.T, w *world, id, p, q string) {
	pp := "/v2/projects/" + p
	code, b := w.admin.call("PATCH", pp+"/devices/"+id+"/configuration", map[string]any{"desired": map[string]any{"sampleIntervalSeconds": 60}})
	if code != 400 || !strings.Contains(string(b), "ccon") {
		t.Errorf("configuring a connector: %d %s, want 400 naming the ccon type", code, b)
	}
	conf := must[struct {
		Devices []struct {
			DeviceID, Status string
			Error            *struct{ Code string }
		}
	}](t, 200)(w.admin.call("POST", pp+"/devices:configure", map[string]any{"deviceIds": []string{id}, "desired": map[string]any{"sampleIntervalSeconds": 60}}))
	if len(conf.Devices) != 1 || conf.Devices[0].Error == nil || conf.Devices[0].Error.Code != "INVALID_ARGUMENT" {
		t.Errorf("devices:configure of a connector: %+v, want INVALID_ARGUMENT", conf)
	}
	claim := must[struct {
		ClaimedDevices []any
		ClaimErrors    struct {
			Devices []struct{ DeviceID, Code string }
		}
	}](t, 200)(w.admin.call("POST", "/v2/projects/"+q+"/devices:claim", map[string]any{"deviceIds": []string{id}}))
	if len(claim.ClaimedDevices) != 0 || len(claim.ClaimErrors.Devices) != 1 || claim.ClaimErrors.Devices[0].Code != "ALREADY_CLAIMED" {
		t.Errorf("claiming a connector: %+v, want ALREADY_CLAIMED", claim)
	}
	moved := must[struct {
		TransferErrors []struct {
			Device string
			Status struct{ Code string }
		}
	}](t, 200)(w.admin.call("POST", "/v2/projects/"+q+"/devices:transfer", map[string]any{"devices": []string{"projects/" + p + "/devices/" + id}}))
	if len(moved.TransferErrors) != 1 || moved.TransferErrors[0].Status.Code != "INVALID_ARGUMENT" {
		t.Errorf("transferring a connector: %+v, want INVALID_ARGUMENT", moved)
	}
	d := must[api.Device](t, 200)(w.admin.call("GET", pp+"/devices/"+id, nil))
	if d.Name != "projects/"+p+"/devices/"+id {
		t.Fatalf("after the refusals the connector is %s", d.Name)
	}
}
