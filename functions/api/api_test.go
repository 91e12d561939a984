package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sealedsense/sealedsense/functions/api"
	"github.com/sealedsense/sealedsense/shared/event"
	"github.com/sealedsense/sealedsense/shared/payload"
)

func TestTokenFlow(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "SEALEDSENSE_API_ACCESS_TTL=1s")
	c := w.admin
	// DT's clients send no jti and may send one assertion twice.
	a := c.assertion(nil)
	for i := range 2 {
		code, out := c.exchange(a)
		if code != 200 || out["access_token"] == "" || out["expires_in"] != float64(3600) {
			t.Fatalf("exchange %d: %d %v", i, code, out)
		}
	}
	now := time.Now()
	for _, tc := range []struct {
		name string
		mod  func(h map[string]any, cl jwt.MapClaims)
	}{
		{"expired", func(_ map[string]any, cl jwt.MapClaims) {
			cl["iat"], cl["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		}},
		{"exp more than an hour after iat", func(_ map[string]any, cl jwt.MapClaims) { cl["exp"] = now.Add(time.Hour + time.Minute).Unix() }},
		{"wrong aud", func(_ map[string]any, cl jwt.MapClaims) { cl["aud"] = "https://api.d21s.com/v2/oauth2/token" }},
		{"wrong iss", func(_ map[string]any, cl jwt.MapClaims) { cl["iss"] = "someone@else.serviceaccount.d21s.com" }},
		{"unknown kid", func(h map[string]any, _ jwt.MapClaims) { h["kid"] = "c0ffeec0ffeec0ffee00" }},
		{"wrong secret", func(h map[string]any, _ jwt.MapClaims) { h["secret"] = "not-the-secret-not-the-secret-00" }},
	} {
		if code, out := c.exchange(c.assertion(tc.mod)); code != 401 || out["error"] != "invalid_grant" {
			t.Errorf("%s: %d %v, want 401 invalid_grant", tc.name, code, out)
		}
	}
	if code, _ := w.request("POST", "/oauth2/token", "", "grant_type=password"); code != 400 {
		t.Errorf("a JSON-less, wrong grant: %d", code)
	}
	// The token works, and so does basic auth only once enabled.
	p := w.tenant.Project
	if code, b := c.call("GET", "/v2/projects/"+p, nil); code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(c.creds.KeyID+":"+c.creds.Secret))
	if code, _ := w.request("GET", "/v2/projects/"+p, basic, nil); code != 401 {
		t.Fatalf("basic auth without enableBasicAuth: %d", code)
	}
	self := "/v2/projects/" + p + "/serviceaccounts/" + w.tenant.Account
	must[map[string]any](t, 200)(c.call("PATCH", self, map[string]any{"enableBasicAuth": true}))
	waitStatus(t, w, "GET", "/v2/projects/"+p, basic, 200)
	wrongBasic := "Basic " + base64.StdEncoding.EncodeToString([]byte(c.creds.KeyID+":guess"))
	if code, _ := w.request("GET", "/v2/projects/"+p, wrongBasic, nil); code != 401 {
		t.Fatalf("basic auth with a wrong secret: %d", code)
	}
	// Key ids Firestore cannot take as document ids are unknown
	// credentials, not a failure of ours (a 503, and an ERROR log line).
	for _, id := range []string{"a/b", "__x__", ".."} {
		if code, _ := w.request("GET", "/v2/projects/"+p, "Basic "+base64.StdEncoding.EncodeToString([]byte(id+":secret")), nil); code != 401 {
			t.Errorf("basic auth with key id %q: %d, want 401", id, code)
		}
		if code, _ := c.exchange(c.assertion(func(h map[string]any, _ jwt.MapClaims) { h["kid"] = id })); code != 401 {
			t.Errorf("assertion with kid %q: %d, want 401", id, code)
		}
	}

	// A key's secret is nowhere in Firestore in plaintext.
	for _, coll := range []string{"serviceAccountKeys", "serviceAccounts", "members", "auditLog", "projects", "organizations", "cloud"} {
		docs, err := w.fs.Collection(coll).Documents(context.Background()).GetAll()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			js, _ := json.Marshal(d.Data())
			if strings.Contains(string(js), c.creds.Secret) || strings.Contains(string(js), base64.StdEncoding.EncodeToString([]byte(c.creds.Secret))) {
				t.Fatalf("%s/%s holds the secret", coll, d.Ref.ID)
			}
		}
	}

	// Deleting a key stops its tokens within the access TTL (1s here).
	second := w.account(p, "roles/project.user")
	tok := "Bearer " + second.token()
	waitStatus(t, w, "GET", "/v2/projects/"+p, tok, 200)
	keyName := "/v2/projects/" + p + "/serviceaccounts/" + strings.Split(second.creds.Email, "@")[0] + "/keys/" + second.creds.KeyID
	must[map[string]any](t, 200)(c.call("DELETE", keyName, nil))
	waitStatus(t, w, "GET", "/v2/projects/"+p, tok, 401)
	if code, _ := second.exchange(second.assertion(nil)); code != 401 {
		t.Fatalf("a deleted key still gets tokens: %d", code)
	}
	// Disabling an account stops its tokens too.
	third := w.account(p, "roles/project.user")
	tok3 := "Bearer " + third.token()
	must[map[string]any](t, 200)(c.call("PATCH", "/v2/projects/"+p+"/serviceaccounts/"+strings.Split(third.creds.Email, "@")[0], map[string]any{"disabled": true}))
	waitStatus(t, w, "GET", "/v2/projects/"+p, tok3, 401)
}

// waitStatus polls until a request answers want, for changes that take
// effect within the access TTL.
func waitStatus(t *testing.T, w *world, method, path, auth string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, b := w.request(method, path, auth, nil)
		if code == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s = %d after 10s, want %d: %s", method, path, code, want, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "SEALEDSENSE_API_RATE=10000")
	a := w.tenant.Project
	b, err := w.store.Bootstrap(context.Background(), "Beta", "", "Beta main", w.base+"/oauth2/token")
	if err != nil {
		t.Fatal(err)
	}
	bAdmin := w.client(b.Credentials)
	aDevs := w.devices(a, "", 3)
	bDevs := w.devices(b.Project, "", 3)
	aAdmin := w.admin // organization admin of A: the most A can be
	// Paths of B's, each tried with A's credentials.
	bp := "/v2/projects/" + b.Project
	for _, path := range []string{bp, bp + "/devices", bp + "/devices/" + bDevs[0], bp + "/devices/" + bDevs[0] + "/events",
		bp + "/members", bp + "/serviceaccounts", bp + "/serviceaccounts/" + b.Account, bp + "/serviceaccounts/" + b.Account + "/keys",
		bp + "/auditLog", "/v2/organizations/" + b.Organization} {
		if code, body := aAdmin.call("GET", path, nil); code != 403 {
			t.Errorf("GET %s as A: %d %s", path, code, body)
		}
	}
	for _, rq := range []struct {
		method, path string
		body         any
	}{
		{"PATCH", bp, map[string]any{"displayName": "pwned"}},
		{"POST", bp + "/devices:batchUpdate", map[string]any{"devices": []string{bDevs[0]}, "addLabels": map[string]string{"x": "y"}}},
		{"POST", bp + "/serviceaccounts", map[string]any{"displayName": "backdoor"}},
		{"POST", bp + "/members", map[string]any{"roles": []string{"roles/project.admin"}, "email": aAdmin.creds.Email}},
		{"DELETE", bp + "/serviceaccounts/" + b.Account, nil},
		{"POST", "/v2/projects", map[string]any{"displayName": "x", "organization": "organizations/" + b.Organization}},
		// "-" means every readable project only where a route says so.
		{"POST", "/v2/projects/-/serviceaccounts", map[string]any{"displayName": "nowhere"}},
		{"DELETE", "/v2/projects/-", nil},
		{"GET", "/v2/projects/-/members", nil},
	} {
		if code, body := aAdmin.call(rq.method, rq.path, rq.body); code != 403 {
			t.Errorf("%s %s as A: %d %s", rq.method, rq.path, code, body)
		}
	}
	ap := "/v2/projects/" + a
	// B's devices through A's own project: by id, by filter, by name.
	if code, _ := aAdmin.call("GET", ap+"/devices/"+bDevs[0], nil); code != 404 {
		t.Errorf("B's device under A's project: %d", code)
	}
	if code, _ := aAdmin.call("GET", ap+"/devices/"+bDevs[0]+"/events", nil); code != 404 {
		t.Errorf("B's device's events under A's project: %d", code)
	}
	list := must[struct{ Devices []api.Device }](t, 200)(aAdmin.call("GET", ap+"/devices?device_ids="+strings.Join(bDevs, ","), nil))
	if len(list.Devices) != 0 {
		t.Errorf("device_ids of B's devices listed %d under A", len(list.Devices))
	}
	all := must[struct{ Devices []api.Device }](t, 200)(aAdmin.call("GET", "/v2/projects/-/devices", nil))
	if len(all.Devices) != len(aDevs) {
		t.Errorf("project - lists %d devices, want A's %d", len(all.Devices), len(aDevs))
	}
	for _, d := range all.Devices {
		if !strings.HasPrefix(d.Name, "projects/"+a+"/") {
			t.Errorf("project - showed %s", d.Name)
		}
	}
	if code, _ := aAdmin.call("GET", "/v2/projects/-/devices?organization=organizations/"+b.Organization, nil); code != 200 {
		t.Errorf("project - in B's organization: %d", code)
	} else if l := must[struct{ Devices []api.Device }](t, 200)(aAdmin.call("GET", "/v2/projects/-/devices?organization=organizations/"+b.Organization, nil)); len(l.Devices) != 0 {
		t.Errorf("project - in B's organization showed %d devices", len(l.Devices))
	}
	batch := must[struct{ BatchErrors []map[string]any }](t, 200)(aAdmin.call("POST", ap+"/devices:batchUpdate",
		map[string]any{"devices": []string{"projects/" + b.Project + "/devices/" + bDevs[0], bDevs[1]}, "addLabels": map[string]string{"x": "y"}}))
	if len(batch.BatchErrors) != 2 {
		t.Errorf("batchUpdate of B's devices from A: %v", batch)
	}
	moved := must[struct{ TransferErrors []map[string]any }](t, 200)(aAdmin.call("POST", ap+"/devices:transfer",
		map[string]any{"devices": []string{"projects/" + b.Project + "/devices/" + bDevs[0]}}))
	if len(moved.TransferErrors) != 1 {
		t.Errorf("transfer of B's device into A: %v", moved)
	}
	claimed := must[struct {
		ClaimedDevices []map[string]any
		ClaimErrors    struct{ Devices []map[string]any }
	}](t, 200)(aAdmin.call("POST", ap+"/devices:claim", map[string]any{"deviceIds": bDevs[:1]}))
	if len(claimed.ClaimedDevices) != 0 || claimed.ClaimErrors.Devices[0]["code"] != "ALREADY_CLAIMED" {
		t.Errorf("claiming B's device: %+v", claimed)
	}
	if code, _ := aAdmin.call("POST", ap+"/members", map[string]any{"roles": []string{"roles/project.user"}, "email": bAdmin.creds.Email}); code != 404 {
		t.Errorf("adding B's account to A: %d", code)
	}
	// A page token of B's listing is refused in A's project, and an edited
	// one anywhere.
	bPage := must[struct{ NextPageToken string }](t, 200)(bAdmin.call("GET", bp+"/devices?pageSize=1", nil))
	if bPage.NextPageToken == "" {
		t.Fatal("no next page")
	}
	if code, _ := aAdmin.call("GET", ap+"/devices?pageSize=1&pageToken="+url.QueryEscape(bPage.NextPageToken), nil); code != 400 {
		t.Errorf("B's page token in A's project: %d", code)
	}
	tampered := []byte(bPage.NextPageToken)
	tampered[len(tampered)/2] ^= 1
	if code, _ := bAdmin.call("GET", bp+"/devices?pageSize=1&pageToken="+url.QueryEscape(string(tampered)), nil); code != 400 {
		t.Errorf("edited page token: %d", code)
	}
	if code, _ := bAdmin.call("GET", bp+"/devices?pageSize=1&device_types=co2&pageToken="+url.QueryEscape(bPage.NextPageToken), nil); code != 400 {
		t.Errorf("page token with other filters: %d", code)
	}
	// Nothing of B's changed.
	for _, id := range bDevs {
		d := must[api.Device](t, 200)(bAdmin.call("GET", bp+"/devices/"+id, nil))
		if len(d.Labels) != 0 {
			t.Errorf("B's device %s labels %v", id, d.Labels)
		}
	}
}

func TestClaiming(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p := w.tenant.Project
	single := w.devices("", "", 1)[0]
	kit := w.devices("", "kit-"+strings.ToLower(t.Name()[4:8])+fmt.Sprint(time.Now().UnixNano()%1e6), 3)
	var kitID string
	{
		info := must[map[string]any](t, 200)(w.admin.call("GET", "/v2/claimInfo?identifier="+kit[0], nil))
		dev := info["device"].(map[string]any)
		if info["type"] != "DEVICE" || dev["isClaimed"] != false || dev["deviceType"] != "temperature" {
			t.Fatalf("claimInfo: %v", info)
		}
		snap, err := w.fs.Collection("devices").Doc(kit[0]).Get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		kitID = snap.Data()["kitId"].(string)
	}
	info := must[map[string]any](t, 200)(w.admin.call("GET", "/v2/claimInfo?identifier="+kitID, nil))
	if info["type"] != "KIT" || len(info["kit"].(map[string]any)["devices"].([]any)) != 3 {
		t.Fatalf("claimInfo of a kit: %v", info)
	}
	if code, _ := w.admin.call("GET", "/v2/claimInfo?identifier=nosuchthing", nil); code != 404 {
		t.Fatalf("claimInfo of nothing: %d", code)
	}
	type result struct {
		ClaimedDevices []struct{ DeviceID string }
		ClaimErrors    struct {
			Devices []struct{ DeviceID, Code string }
			Kits    []struct{ KitID, Code string }
		}
	}
	body := map[string]any{"deviceIds": []string{single, "nosuchdevice"}, "kitIds": []string{kitID, "nosuchkit"}}
	dry := must[result](t, 200)(w.admin.call("POST", "/v2/projects/"+p+"/devices:claim?dryRun=true", body))
	if len(dry.ClaimedDevices) != 4 || len(dry.ClaimErrors.Devices) != 1 || dry.ClaimErrors.Devices[0].Code != "NOT_FOUND" ||
		len(dry.ClaimErrors.Kits) != 1 || dry.ClaimErrors.Kits[0].Code != "NOT_FOUND" {
		t.Fatalf("dry run: %+v", dry)
	}
	if l := must[struct{ Devices []api.Device }](t, 200)(w.admin.call("GET", "/v2/projects/"+p+"/devices", nil)); len(l.Devices) != 0 {
		t.Fatalf("a dry run claimed %d devices", len(l.Devices))
	}
	got := must[result](t, 200)(w.admin.call("POST", "/v2/projects/"+p+"/devices:claim", body))
	if len(got.ClaimedDevices) != 4 {
		t.Fatalf("claim: %+v", got)
	}
	again := must[result](t, 200)(w.admin.call("POST", "/v2/projects/"+p+"/devices:claim", map[string]any{"deviceIds": []string{single}}))
	if len(again.ClaimedDevices) != 0 || again.ClaimErrors.Devices[0].Code != "ALREADY_CLAIMED" {
		t.Fatalf("second claim: %+v", again)
	}
	l := must[struct{ Devices []api.Device }](t, 200)(w.admin.call("GET", "/v2/projects/"+p+"/devices", nil))
	if len(l.Devices) != 4 {
		t.Fatalf("after claiming: %d devices", len(l.Devices))
	}
	if info := must[map[string]any](t, 200)(w.admin.call("GET", "/v2/claimInfo?identifier="+single, nil)); info["device"].(map[string]any)["isClaimed"] != true {
		t.Fatalf("claimInfo after the claim: %v", info)
	}
}

// storeEvent writes an event as ingest stores it.
func storeEvent(t *testing.T, w *world, project, device string, seq uint64, at time.Time, kind payload.Kind) {
	t.Helper()
	c, pct := 21.5, uint8(80)
	r := payload.Reading{Seq: seq, Kind: kind, Time: at.UnixMilli()}
	switch kind {
	case payload.Temperature:
		r.Celsius = &c
	case payload.Battery:
		r.Percentage = &pct
	}
	ev, err := event.FromReading(project, device, r)
	if err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(ev)
	_, err = w.fs.Collection("events").Doc(ev.EventID).Set(context.Background(), map[string]any{
		"projectId": project, "deviceId": device, "eventType": ev.EventType, "timestamp": at.UTC(), "json": js, "expireAt": at.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
}

func TestDevicesAndEvents(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p := w.tenant.Project
	ids := w.devices(p, "", 5)
	pp := "/v2/projects/" + p
	dev := w.account(p, "roles/project.developer")
	// Labels through batchUpdate, then every filter.
	res := must[struct{ BatchErrors []any }](t, 200)(dev.call("POST", pp+"/devices:batchUpdate",
		map[string]any{"devices": []string{"projects/" + p + "/devices/" + ids[0], ids[1]}, "addLabels": map[string]string{"room": "lab", "name": "Freezer"}}))
	if len(res.BatchErrors) != 0 {
		t.Fatalf("batchUpdate: %v", res)
	}
	must[struct{ BatchErrors []any }](t, 200)(dev.call("POST", pp+"/devices:batchUpdate", map[string]any{"devices": []string{ids[1]}, "removeLabels": []string{"name"}}))
	names := func(path string) []string {
		l := must[struct{ Devices []api.Device }](t, 200)(dev.call("GET", path, nil))
		var out []string
		for _, d := range l.Devices {
			out = append(out, d.Name[strings.LastIndex(d.Name, "/")+1:])
		}
		slices.Sort(out)
		return out
	}
	sorted := func(s ...string) []string { s = slices.Clone(s); slices.Sort(s); return s }
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"label_filters=room=lab", sorted(ids[0], ids[1])},
		{"label_filters=name", sorted(ids[0])},
		{"device_ids=" + ids[2] + "," + ids[3], sorted(ids[2], ids[3])},
		{"device_types=temperature", sorted(ids...)},
		{"device_types=co2", nil},
		{"query=freez", sorted(ids[0])},
		{"order_by=-labels.room", sorted(ids[0], ids[1])},
	} {
		if got := names(pp + "/devices?" + tc.query); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.query, got, tc.want)
		}
	}
	// Pagination walks every device once.
	var seen []string
	tok := ""
	for range 10 {
		l := must[struct {
			Devices       []api.Device
			NextPageToken string
		}](t, 200)(dev.call("GET", pp+"/devices?pageSize=2&pageToken="+url.QueryEscape(tok), nil))
		for _, d := range l.Devices {
			seen = append(seen, d.Name[strings.LastIndex(d.Name, "/")+1:])
		}
		if tok = l.NextPageToken; tok == "" {
			break
		}
	}
	if !slices.Equal(sorted(seen...), sorted(ids...)) {
		t.Fatalf("pages gave %v, want %v", seen, ids)
	}
	// Event history with filters and pages.
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := range 6 {
		kind := payload.Temperature
		if i%3 == 2 {
			kind = payload.Battery
		}
		storeEvent(t, w, p, ids[0], uint64(i+1), base.Add(time.Duration(i)*time.Minute), kind)
	}
	storeEvent(t, w, "someone-else", ids[0], 99, base, payload.Temperature) // before a transfer, say
	type events struct {
		Events []struct {
			EventID   string `json:"eventId"`
			Timestamp string `json:"timestamp"` // fixed width: orders as text
		}
		NextPageToken string
	}
	evp := pp + "/devices/" + ids[0] + "/events"
	// Its 6 readings, and the labelsChanged of its labelling above.
	all := must[events](t, 200)(dev.call("GET", evp, nil))
	if len(all.Events) != 7 {
		t.Fatalf("history: %d events, want 6 readings and 1 labelsChanged", len(all.Events))
	}
	for i := 1; i < len(all.Events); i++ {
		if all.Events[i].Timestamp < all.Events[i-1].Timestamp {
			t.Fatal("history is not oldest first")
		}
	}
	temps := must[events](t, 200)(dev.call("GET", evp+"?eventTypes=temperature", nil))
	if len(temps.Events) != 4 {
		t.Fatalf("eventTypes=temperature: %d", len(temps.Events))
	}
	window := must[events](t, 200)(dev.call("GET", evp+"?startTime="+url.QueryEscape(base.Add(time.Minute).Format(time.RFC3339Nano))+
		"&endTime="+url.QueryEscape(base.Add(3*time.Minute).Format(time.RFC3339Nano)), nil))
	if len(window.Events) != 2 {
		t.Fatalf("time window: %d events, want 2", len(window.Events))
	}
	var paged []string
	next := ""
	for range 10 {
		pg := must[events](t, 200)(dev.call("GET", evp+"?pageSize=4&pageToken="+url.QueryEscape(next), nil))
		for _, e := range pg.Events {
			paged = append(paged, e.EventID)
		}
		if next = pg.NextPageToken; next == "" {
			break
		}
	}
	if len(paged) != 7 {
		t.Fatalf("paged history: %d events, want 7", len(paged))
	}
	if code, _ := dev.call("GET", evp+"?eventTypes=nonsense", nil); code != 400 {
		t.Errorf("unknown event type: %d", code)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "SEALEDSENSE_API_RATE=5")
	p := w.tenant.Project
	pp := "/v2/projects/" + p
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   any
		want   int
	}{
		{"unknown field", "PATCH", pp, `{"displayName":"x","owner":"me"}`, 400},
		{"malformed JSON", "PATCH", pp, `{"displayName":`, 400},
		{"two objects", "PATCH", pp, `{"displayName":"a"}{"displayName":"b"}`, 400},
		{"wrong type", "PATCH", pp, `{"displayName":5}`, 400},
		{"oversized", "PATCH", pp, `{"displayName":"` + strings.Repeat("x", 70<<10) + `"}`, 413},
		{"bad personnel setting", "PATCH", pp, `{"personnelAccess":"SOMETIMES"}`, 400},
		{"bad page size", "GET", pp + "/devices?pageSize=100000", nil, 400},
		{"garbage page token", "GET", pp + "/devices?pageToken=bm90IGEgdG9rZW4", nil, 400},
		{"bad label key", "GET", pp + "/devices?label_filters=a%20b", nil, 400},
		{"bad order_by", "GET", pp + "/devices?order_by=publicKey", nil, 400},
		{"empty claim", "POST", pp + "/devices:claim", `{}`, 400},
		{"no such route", "GET", "/v2/nothing", nil, 404},
		{"a slash in an id", "GET", pp + "/devices/a%2Fb", nil, 404},
		{"a reserved id", "GET", pp + "/serviceaccounts/__x__", nil, 404},
	} {
		code, b := w.admin.call(tc.method, tc.path, tc.body)
		if code != tc.want {
			t.Errorf("%s: %d, want %d: %s", tc.name, code, tc.want, b)
		}
		var e struct {
			Error string
			Code  int
		}
		if json.Unmarshal(b, &e) != nil || e.Code != code || e.Error == "" {
			t.Errorf("%s: not DT's error shape: %s", tc.name, b)
		}
		if strings.Contains(string(b), "goroutine") || strings.Contains(string(b), "firestore") || strings.Contains(string(b), ".go:") {
			t.Errorf("%s: internals in the answer: %s", tc.name, b)
		}
		time.Sleep(250 * time.Millisecond) // stay under this world's 5 requests/s
	}
	// Past the rate, 429 with Retry-After, which DT's clients honour.
	var code int
	var h http.Header
	for range 30 {
		if code, _, h = w.requestHeaders("GET", pp, "Bearer "+w.admin.token(), nil); code == 429 {
			break
		}
	}
	if code != 429 || h.Get("Retry-After") == "" {
		t.Fatalf("no 429 with Retry-After after a burst: %d %v", code, h)
	}
}

func TestAuditAndPersonnel(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p := w.tenant.Project
	pp := "/v2/projects/" + p
	d := w.devices(p, "", 1)[0]
	user := w.account(p, "roles/project.user")
	must[api.Device](t, 200)(user.call("GET", pp+"/devices/"+d, nil))
	must[map[string]any](t, 200)(w.admin.call("PATCH", pp, map[string]any{"displayName": "renamed"}))
	if code, _ := user.call("PATCH", pp, map[string]any{"displayName": "mine"}); code != 403 {
		t.Fatalf("user renamed the project: %d", code)
	}
	type entries struct{ Entries []api.AuditEntry }
	log := must[entries](t, 200)(w.admin.call("GET", pp+"/auditLog", nil))
	find := func(action, actor string, code int) bool {
		for _, e := range log.Entries {
			if e.Action == action && e.Actor == actor && e.Code == code {
				return true
			}
		}
		return false
	}
	if !find("GET /v2/projects/{project}/devices/{device}", user.creds.Email, 200) {
		t.Errorf("no audit entry for the user's read: %+v", log.Entries)
	}
	if !find("PATCH /v2/projects/{project}", w.admin.creds.Email, 200) || !find("PATCH /v2/projects/{project}", user.creds.Email, 403) {
		t.Errorf("no audit entries for the change and the refused change: %+v", log.Entries)
	}
	for i := 1; i < len(log.Entries); i++ {
		if log.Entries[i].Time.After(log.Entries[i-1].Time) {
			t.Fatal("the audit log is not newest first")
		}
	}
	// Entries cannot be changed or deleted through the API.
	entry := "/v2/" + log.Entries[0].Name
	for _, m := range []string{"PATCH", "PUT", "DELETE"} {
		if code, _ := w.admin.call(m, entry, `{}`); code != 404 && code != 405 {
			t.Errorf("%s %s: %d", m, entry, code)
		}
		if code, _ := w.admin.call(m, pp+"/auditLog", `{}`); code != 404 && code != 405 {
			t.Errorf("%s auditLog: %d", m, code)
		}
	}

	// Personnel: refused while the project denies, audited either way.
	ctx := context.Background()
	if _, err := w.store.PersonnelDevices(ctx, "ops@sealedsense", p, "too short"); err == nil {
		t.Fatal("personnel access without a proper reason")
	}
	if _, err := w.store.PersonnelDevices(ctx, "ops@sealedsense", p, "ticket 4711: customer asked why a sensor is silent"); !errors.Is(err, api.ErrPersonnelDenied) {
		t.Fatalf("denied project: %v", err)
	}
	must[map[string]any](t, 200)(w.admin.call("PATCH", pp, map[string]any{"personnelAccess": api.PersonnelAllowWithReason}))
	devs, err := w.store.PersonnelDevices(ctx, "ops@sealedsense", p, "ticket 4712: battery replacement planning")
	if err != nil || len(devs) != 1 {
		t.Fatalf("allowed project: %v, %v", devs, err)
	}
	log = must[entries](t, 200)(w.admin.call("GET", pp+"/auditLog", nil))
	var personnel []api.AuditEntry
	for _, e := range log.Entries {
		if e.ActorType == "PERSONNEL" {
			personnel = append(personnel, e)
		}
	}
	if len(personnel) != 2 || personnel[0].Code != 200 || personnel[1].Code != 403 || !strings.Contains(personnel[0].Reason, "4712") {
		t.Fatalf("personnel audit entries: %+v", personnel)
	}
}

// TestNoEscalation: a project admin manages the project's accounts, but not
// one that holds more than the admin does — else a key minted for the
// organization admin would make the project admin one.
func TestNoEscalation(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	p := w.tenant.Project
	admin := w.account(p, "roles/project.admin")
	orgAdmin := "/v2/projects/" + p + "/serviceaccounts/" + w.tenant.Account
	for _, rq := range []struct {
		method, path string
		body         any
	}{
		{"POST", orgAdmin + "/keys", nil},
		{"POST", orgAdmin + "/keys:createCredentialsFile", nil},
		{"PATCH", orgAdmin, map[string]any{"disabled": true}},
		{"PATCH", orgAdmin, map[string]any{"enableBasicAuth": true}},
		{"DELETE", orgAdmin, nil},
		{"DELETE", orgAdmin + "/keys/" + w.admin.creds.KeyID, nil},
	} {
		if code, b := admin.call(rq.method, rq.path, rq.body); code != 403 {
			t.Errorf("project admin %s %s: %d %s", rq.method, rq.path, code, b)
		}
	}
	// The organization admin still works, and may manage the project admin.
	must[map[string]any](t, 200)(w.admin.call("GET", "/v2/projects/"+p, nil))
	adminAccount := "/v2/projects/" + p + "/serviceaccounts/" + strings.Split(admin.creds.Email, "@")[0]
	must[map[string]any](t, 200)(w.admin.call("POST", adminAccount+"/keys", nil))
	// And a project admin manages an account of its own project's level.
	user := w.account(p, "roles/project.user")
	must[map[string]any](t, 200)(admin.call("POST", "/v2/projects/"+p+"/serviceaccounts/"+strings.Split(user.creds.Email, "@")[0]+"/keys", nil))
}
