package api

import (
	"encoding/json"
	"errors"
	"github.com/sealedsense/sealedsense/shared/credentials"
	"github.com/sealedsense/sealedsense/shared/store"
	"github.com/sealedsense/sealedsense/shared/token"
	"io"
	"net/http"
	"strings"
)

// route is one operation. The table drives the mux, the authorization
// test and the OpenAPI document, so a new route is in all three or fails
// the tests.
type route struct {
	Method, Pattern string
	Summary         string
	// Perm is the permission needed on the path's {project}; empty means
	// any authenticated caller, and the handler narrows what it shows.
	Perm string
	// Public routes take no credentials.
	Public bool
	// AnyProject lets the path's {project} be "-", every project the
	// caller can read; the handler checks each. Elsewhere "-" is just an
	// id the caller holds no role in.
	AnyProject bool
	// Audit marks routes that read or change customer data.
	Audit bool
	// Stream routes answer a stream of frames, written by the handler,
	// which also audits its opening and closing; a refusal before that is
	// audited as on any other route.
	Stream bool
	// Status is the success status; Request and Response are zero values
	// of the body types, for the OpenAPI document.
	Status            int
	Request, Response any
	// Query lists the query parameters, for the OpenAPI document.
	Query []string
	// ETag routes answer an ETag header; those with a Request also take
	// If-Match and may answer 412.
	ETag   bool
	handle func(*call) (any, error)
	raw    http.HandlerFunc
}

// call is one authenticated request on its way through a route.
type call struct {
	s       *Service
	w       http.ResponseWriter
	r       *http.Request
	p       *principal
	project string // the path's {project}, "" if none
	org     string // its organization, "" if it does not exist
	// proj is the project as read for a change (refuseWhileErasing), nil
	// on reads.
	proj   *store.Project
	status int // overrides the route's success status
	// touched lists further projects whose data a cross-project read
	// showed, so each gets its audit entry.
	touched []string
	rt      route
	// written: the handler answered by itself (a stream).
	written bool
}

func (s *Service) serve(rt route) http.Handler {
	if rt.Public {
		return rt.raw
	}
	params := wildcards(rt.Pattern)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, p := range params {
			if !validDocID(r.PathValue(p)) {
				// Firestore would refuse it as a document id: answered as
				// the unknown resource it is, not as our failure.
				writeError(w, errNotFound("no such "+p))
				return
			}
		}
		c := &call{s: s, w: w, r: r, project: r.PathValue("project"), rt: rt}
		body, err := s.run(c, rt)
		if c.written {
			return
		}
		if err == nil {
			writeJSON(w, c.statusOr(rt.Status), body)
			return
		}
		var ae *apiError
		switch {
		case !errors.As(err, &ae) || ae.code >= 500:
			s.log.Error("request failed", "method", r.Method, "route", rt.Pattern, "error", err.Error())
		case ae.code == http.StatusUnauthorized:
			// Counted by the authentication-failures metric; who it was is
			// unknown, so there is no audit entry to write.
			s.log.Warn("request refused", "rejected", "unauthenticated", "reason", ae.msg, "method", r.Method, "route", rt.Pattern)
		}
		writeError(w, err)
	})
}

func (c *call) statusOr(def int) int {
	if c.status != 0 {
		return c.status
	}
	return def
}

func (s *Service) run(c *call, rt route) (any, error) {
	p, err := s.authenticate(c.r)
	if err != nil {
		return nil, err
	}
	c.p = p
	if ok, wait := s.limits.allow(p.Account); !ok {
		return nil, &apiError{code: http.StatusTooManyRequests, msg: "rate limit exceeded", retryAfter: wait}
	}
	if c.project != "" && !(c.project == "-" && rt.AnyProject) {
		if c.org, err = s.projectOrg(c.r.Context(), c.project); err != nil {
			return nil, err
		}
		if rt.Perm != "" && !p.can(rt.Perm, c.project, c.org) {
			// Existing or not, a project the caller cannot use answers the
			// same, so ids cannot be probed.
			err := errForbidden("missing permission " + rt.Perm + " on projects/" + c.project)
			if c.org != "" && (rt.Audit || rt.Stream) {
				if aerr := s.audit(c, rt, http.StatusForbidden); aerr != nil {
					return nil, errUnavailable(aerr)
				}
			}
			return nil, err
		}
	}
	if o := c.r.PathValue("organization"); o != "" && rt.Perm != "" {
		// Only a grant on the organization itself counts; whether it
		// exists or not, one the caller holds none on answers the same.
		c.org = o
		if !p.canOrg(rt.Perm, o) {
			err := errForbidden("missing permission " + rt.Perm + " on organizations/" + o)
			if _, oerr := s.db.Organization(c.r.Context(), o); oerr == nil && rt.Audit {
				// The organization's admins see who tried.
				if aerr := s.audit(c, rt, http.StatusForbidden); aerr != nil {
					return nil, errUnavailable(aerr)
				}
			}
			return nil, err
		}
	}
	var body any
	err = s.refuseWhileErasing(c)
	if err == nil {
		body, err = rt.handle(c)
	}
	code := c.statusOr(rt.Status)
	var ae *apiError
	if errors.As(err, &ae) {
		code = ae.code
	} else if err != nil {
		code = http.StatusInternalServerError
	}
	if rt.Audit {
		// The entry is written before the answer: a read that cannot be
		// audited is not answered.
		if aerr := s.audit(c, rt, code); aerr != nil {
			return nil, errUnavailable(aerr)
		}
	}
	return body, err
}

// wildcards lists the names of a pattern's {wildcards}.
func wildcards(pattern string) []string {
	var out []string
	for rest := pattern; ; {
		i := strings.IndexByte(rest, '{')
		j := strings.IndexByte(rest, '}')
		if i < 0 || j < i {
			return out
		}
		out = append(out, rest[i+1:j])
		rest = rest[j+1:]
	}
}

// validDocID says whether a client-supplied id can name a Firestore
// document: not empty, at most 256 bytes, no slash, not . or .., not
// __reserved__.
func validDocID(id string) bool {
	return id != "" && len(id) <= 256 && !strings.Contains(id, "/") && id != "." && id != ".." &&
		!(strings.HasPrefix(id, "__") && strings.HasSuffix(id, "__"))
}

// decode reads a JSON body strictly: one object, known fields only, within
// the size limit.
func decode(c *call, v any) error {
	c.r.Body = http.MaxBytesReader(c.w, c.r.Body, c.s.cfg.MaxBody)
	dec := json.NewDecoder(c.r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return &apiError{code: http.StatusRequestEntityTooLarge, msg: "request body too large"}
		case errors.Is(err, io.EOF):
			return errBadRequest("request body required")
		case strings.HasPrefix(err.Error(), "json: unknown field"):
			return errBadRequest("%s", strings.TrimPrefix(err.Error(), "json: "))
		default:
			return errBadRequest("malformed JSON body")
		}
	}
	if dec.More() {
		return errBadRequest("one JSON object expected")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errBadRequest("one JSON object expected")
	}
	return nil
}

// Routes lists the API's operations as "METHOD /path" strings, for tests
// and the OpenAPI document.
func (s *Service) Routes() []string {
	var out []string
	for _, rt := range s.routes() {
		out = append(out, rt.Method+" "+rt.Pattern)
	}
	return out
}

func (s *Service) routes() []route {
	// paged lists a listing's query parameters and the paging ones.
	paged := func(q ...string) []string { return append(q, "pageSize", "pageToken") }
	return []route{
		{Method: "POST", Pattern: "/oauth2/token", Summary: "Exchange a service-account assertion (RFC 7523) for an access token", Public: true, Status: 200, Response: tokenResponse{}, raw: s.handleToken},
		{Method: "GET", Pattern: "/.well-known/jwks.json", Summary: "Public keys of access tokens and webhook signatures", Public: true, Status: 200, Response: token.JWKSet{}, raw: s.handleJWKS},
		{Method: "GET", Pattern: "/v2/openapi.json", Summary: "This document", Public: true, Status: 200, raw: s.handleOpenAPI},

		{Method: "GET", Pattern: "/v2/organizations", Summary: "List organizations", Status: 200, Response: listOrganizations{}, Query: paged(), handle: s.listOrganizations},
		{Method: "GET", Pattern: "/v2/organizations/{organization}", Summary: "Get an organization", Status: 200, Response: Organization{}, handle: s.getOrganization},
		{Method: "GET", Pattern: "/v2/organizations/{organization}/permissions", Summary: "The caller's permissions in an organization", Status: 200, Response: listPermissions{}, handle: s.listOrgPermissions},
		{Method: "GET", Pattern: "/v2/organizations/{organization}/members", Summary: "List the organization's members (its admins)", Perm: permMemberRead, Audit: true, Status: 200, Response: listMembers{}, Query: paged(), handle: s.listMembers},
		{Method: "POST", Pattern: "/v2/organizations/{organization}/members", Summary: "Make a service account of the organization, or a person by email, its admin", Perm: permMemberWrite, Audit: true, Status: 200, Request: createMember{}, Response: Member{}, handle: s.createMember},
		{Method: "GET", Pattern: "/v2/organizations/{organization}/members/{member}", Summary: "Get an organization member", Perm: permMemberRead, Audit: true, Status: 200, Response: Member{}, handle: s.getMember},
		{Method: "PATCH", Pattern: "/v2/organizations/{organization}/members/{member}", Summary: "Change an organization member's roles", Perm: permMemberWrite, Audit: true, Status: 200, Request: updateMember{}, Response: Member{}, handle: s.updateMember},
		{Method: "DELETE", Pattern: "/v2/organizations/{organization}/members/{member}", Summary: "Remove an organization member; the last admin stays", Perm: permMemberWrite, Audit: true, Status: 200, Response: empty{}, handle: s.deleteMember},
		{Method: "GET", Pattern: "/v2/organizations/{organization}/auditLog", Summary: "The organization's audit log (its members' changes and its projects' erasure tombstones), newest first (SealedSense extension)", Perm: permAuditRead, Status: 200, Response: listAudit{}, Query: paged(), handle: s.listOrgAudit},
		{Method: "GET", Pattern: "/v2/roles", Summary: "List roles", Status: 200, Response: listRoles{}, handle: s.listRoles},
		{Method: "GET", Pattern: "/v2/roles/{role}", Summary: "Get a role", Status: 200, Response: Role{}, handle: s.getRole},

		{Method: "GET", Pattern: "/v2/projects", Summary: "List projects", Status: 200, Response: listProjects{}, Query: paged("organization"), handle: s.listProjects},
		{Method: "POST", Pattern: "/v2/projects", Summary: "Create a project", Status: 200, Request: createProject{}, Response: Project{}, handle: s.createProject},
		{Method: "GET", Pattern: "/v2/projects/{project}", Summary: "Get a project", Perm: permProjectRead, Status: 200, Response: Project{}, handle: s.getProject},
		{Method: "PATCH", Pattern: "/v2/projects/{project}", Summary: "Update a project", Perm: permProjectUpdate, Audit: true, Status: 200, Request: updateProject{}, Response: Project{}, handle: s.updateProject},
		{Method: "DELETE", Pattern: "/v2/projects/{project}", Summary: "Delete an empty project", Perm: permProjectDelete, Audit: true, Status: 200, Response: empty{}, handle: s.deleteProject},
		{Method: "POST", Pattern: "/v2/projects/{project}:export", Summary: "Export the project's data (devices, events, data connectors, members, service accounts, audit log; no secrets) as NDJSON files and a manifest; a filter by device ids or labels exports only those devices and their events (SealedSense extension)", Perm: permProjectExport, Audit: true, Status: 200, Request: exportRequest{}, Response: Export{}, handle: s.startExport},
		{Method: "GET", Pattern: "/v2/projects/{project}/exports", Summary: "The project's 100 newest exports (SealedSense extension)", Perm: permProjectExport, Audit: true, Status: 200, Response: listExports{}, handle: s.listExports},
		{Method: "GET", Pattern: "/v2/projects/{project}/exports/{export}", Summary: "An export's state and, when done, its files' signed download URLs, valid for at most an hour (SealedSense extension)", Perm: permProjectExport, Audit: true, Status: 200, Response: Export{}, handle: s.getExport},
		{Method: "POST", Pattern: "/v2/projects/{project}:erase", Summary: "Erase the project: its events, devices' labels and configuration (the devices return to the unclaimed inventory), data connectors, service accounts, members, exports and audit log; only the erasure's tombstone remains (SealedSense extension)", Perm: permProjectErase, Audit: true, Status: 200, Request: eraseRequest{}, Response: Erasure{}, handle: s.eraseProject},
		{Method: "POST", Pattern: "/v2/projects/{project}/devices/{device}:erase", Summary: "Erase the events stored of one device in the project (SealedSense extension)", Perm: permDeviceErase, Audit: true, Status: 200, Request: eraseDeviceRequest{}, Response: Erasure{}, handle: s.eraseDevice},
		{Method: "GET", Pattern: "/v2/projects/{project}/erasures/{erasure}", Summary: "An erasure's progress; a project's, after it, from its tombstone (SealedSense extension)", Audit: true, Status: 200, Response: Erasure{}, handle: s.getErasure},
		{Method: "GET", Pattern: "/v2/projects/{project}/permissions", Summary: "The caller's permissions in a project", Status: 200, Response: listPermissions{}, handle: s.listPermissions},

		{Method: "GET", Pattern: "/v2/projects/{project}/members", Summary: "List members", Perm: permMemberRead, Audit: true, Status: 200, Response: listMembers{}, Query: paged(), handle: s.listMembers},
		{Method: "POST", Pattern: "/v2/projects/{project}/members", Summary: "Add a member: a service account of the organization, or a person by email (who signs in to Studio)", Perm: permMemberWrite, Audit: true, Status: 200, Request: createMember{}, Response: Member{}, handle: s.createMember},
		{Method: "GET", Pattern: "/v2/projects/{project}/members/{member}", Summary: "Get a member", Perm: permMemberRead, Audit: true, Status: 200, Response: Member{}, handle: s.getMember},
		{Method: "PATCH", Pattern: "/v2/projects/{project}/members/{member}", Summary: "Change a member's roles", Perm: permMemberWrite, Audit: true, Status: 200, Request: updateMember{}, Response: Member{}, handle: s.updateMember},
		{Method: "DELETE", Pattern: "/v2/projects/{project}/members/{member}", Summary: "Remove a member", Perm: permMemberWrite, Audit: true, Status: 200, Response: empty{}, handle: s.deleteMember},

		{Method: "GET", Pattern: "/v2/projects/{project}/serviceaccounts", Summary: "List service accounts", Perm: permAccountRead, Audit: true, Status: 200, Response: listAccounts{}, Query: paged(), handle: s.listAccounts},
		{Method: "POST", Pattern: "/v2/projects/{project}/serviceaccounts", Summary: "Create a service account", Perm: permAccountWrite, Audit: true, Status: 200, Request: createAccount{}, Response: ServiceAccount{}, handle: s.createAccount},
		{Method: "GET", Pattern: "/v2/projects/{project}/serviceaccounts/{account}", Summary: "Get a service account", Perm: permAccountRead, Audit: true, Status: 200, Response: ServiceAccount{}, handle: s.getAccount},
		{Method: "PATCH", Pattern: "/v2/projects/{project}/serviceaccounts/{account}", Summary: "Update a service account", Perm: permAccountWrite, Audit: true, Status: 200, Request: updateAccount{}, Response: ServiceAccount{}, handle: s.updateAccount},
		{Method: "DELETE", Pattern: "/v2/projects/{project}/serviceaccounts/{account}", Summary: "Delete a service account, its keys and its memberships", Perm: permAccountWrite, Audit: true, Status: 200, Response: empty{}, handle: s.deleteAccount},
		{Method: "GET", Pattern: "/v2/projects/{project}/serviceaccounts/{account}/keys", Summary: "List keys", Perm: permKeyRead, Audit: true, Status: 200, Response: listKeys{}, Query: paged(), handle: s.listKeys},
		{Method: "POST", Pattern: "/v2/projects/{project}/serviceaccounts/{account}/keys", Summary: "Create a key; its secret is returned once", Perm: permKeyWrite, Audit: true, Status: 200, Response: createdKey{}, handle: s.createKey},
		{Method: "POST", Pattern: "/v2/projects/{project}/serviceaccounts/{account}/keys:createCredentialsFile", Summary: "Create a key, answered as the credentials file DT's clients read; its secret is returned once", Perm: permKeyWrite, Audit: true, Status: 200, Response: credentials.ServiceAccount{}, handle: s.createKey},
		{Method: "GET", Pattern: "/v2/projects/{project}/serviceaccounts/{account}/keys/{key}", Summary: "Get a key", Perm: permKeyRead, Audit: true, Status: 200, Response: Key{}, handle: s.getKey},
		{Method: "DELETE", Pattern: "/v2/projects/{project}/serviceaccounts/{account}/keys/{key}", Summary: "Delete a key", Perm: permKeyWrite, Audit: true, Status: 200, Response: empty{}, handle: s.deleteKey},

		{Method: "GET", Pattern: "/v2/projects/{project}/devices", Summary: "List devices; project - lists every project the caller can read", Perm: permDeviceRead, AnyProject: true, Audit: true, Status: 200, Response: listDevices{}, Query: paged("device_ids", "device_types", "label_filters", "order_by", "query", "organization"), handle: s.listDevices},
		{Method: "GET", Pattern: "/v2/projects/{project}/devices/{device}", Summary: "Get a device", Perm: permDeviceRead, Audit: true, Status: 200, Response: Device{}, handle: s.getDevice},
		{Method: "POST", Pattern: "/v2/projects/{project}/devices/{device}/labels", Summary: "Add a label to a device", Perm: permDeviceUpdate, Audit: true, Status: 200, Request: createLabel{}, Response: Label{}, handle: s.createLabel},
		{Method: "PATCH", Pattern: "/v2/projects/{project}/devices/{device}/labels/{label}", Summary: "Change a label's value", Perm: permDeviceUpdate, Audit: true, Status: 200, Request: updateLabel{}, Response: Label{}, handle: s.updateLabel},
		{Method: "DELETE", Pattern: "/v2/projects/{project}/devices/{device}/labels/{label}", Summary: "Remove a label from a device", Perm: permDeviceUpdate, Audit: true, Status: 200, Response: empty{}, handle: s.deleteLabel},
		{Method: "POST", Pattern: "/v2/projects/{project}/devices:batchUpdate", Summary: "Add and remove labels of devices", Perm: permDeviceUpdate, Audit: true, Status: 200, Request: batchUpdate{}, Response: batchResult{}, handle: s.batchUpdate},
		{Method: "POST", Pattern: "/v2/projects/{project}/devices:transfer", Summary: "Move devices into this project from another of the organization", Perm: permDeviceTransfer, Audit: true, Status: 200, Request: transferRequest{}, Response: transferResult{}, handle: s.transfer},
		{Method: "POST", Pattern: "/v2/projects/{project}/devices:claim", Summary: "Claim devices and kits from the unclaimed inventory", Perm: permDeviceClaim, Audit: true, Status: 200, Request: claimRequest{}, Response: claimResult{}, Query: []string{"dryRun"}, handle: s.claim},

		{Method: "GET", Pattern: "/v2/projects/{project}/health", Summary: "The project's fleet health: sensors by state, open anomalies, connectors online (SealedSense extension)", Perm: permDeviceRead, Audit: true, Status: 200, Response: ProjectHealth{}, handle: s.projectHealth},
		{Method: "GET", Pattern: "/v2/projects/{project}/devices/{device}/configuration", Summary: "A device's configuration: desired, reported and where the change stands (SealedSense extension)", Perm: permDeviceRead, Audit: true, ETag: true, Status: 200, Response: Configuration{}, handle: s.getConfiguration},
		{Method: "PATCH", Pattern: "/v2/projects/{project}/devices/{device}/configuration", Summary: "Set a device's desired configuration; If-Match with the etag refuses a stale change (SealedSense extension)", Perm: permDeviceUpdate, Audit: true, ETag: true, Status: 200, Request: updateConfiguration{}, Response: Configuration{}, handle: s.updateConfiguration},
		{Method: "POST", Pattern: "/v2/projects/{project}/devices:configure", Summary: "Set the desired configuration of the devices named by id or label selector, answered per device (SealedSense extension)", Perm: permDeviceUpdate, Audit: true, Status: 200, Request: configureDevices{}, Response: configureResult{}, handle: s.configureDevices},

		{Method: "GET", Pattern: "/v2/projects/{project}/devices:stream", Summary: "Events as they are stored, as newline-delimited JSON (Accept: application/json) or SSE (Accept: text/event-stream); resume with Last-Event-ID or last_event_id", Perm: permDeviceRead, Stream: true, Status: 200,
			Response: streamFrame{}, Query: []string{"device_ids", "device_types", "event_types", "label_filters", "ping_interval", "last_event_id"}, handle: s.streamDevices},

		{Method: "GET", Pattern: "/v2/projects/{project}/dataconnectors", Summary: "List data connectors", Perm: permConnectorRead, Audit: true, Status: 200, Response: listConnectors{}, Query: paged(), handle: s.listConnectors},
		{Method: "POST", Pattern: "/v2/projects/{project}/dataconnectors", Summary: "Create a data connector; a generated signatureSecret is returned once", Perm: permConnectorWrite, Audit: true, Status: 200, Request: createConnector{}, Response: DataConnector{}, handle: s.createConnector},
		{Method: "GET", Pattern: "/v2/projects/{project}/dataconnectors/{dataconnector}", Summary: "Get a data connector", Perm: permConnectorRead, Audit: true, Status: 200, Response: DataConnector{}, handle: s.getConnector},
		{Method: "PATCH", Pattern: "/v2/projects/{project}/dataconnectors/{dataconnector}", Summary: "Update a data connector; status ACTIVE with backfill=true also re-sends, from stored events, what it missed", Perm: permConnectorWrite, Audit: true, Status: 200, Request: updateConnector{}, Response: DataConnector{}, Query: []string{"backfill"}, handle: s.updateConnector},
		{Method: "DELETE", Pattern: "/v2/projects/{project}/dataconnectors/{dataconnector}", Summary: "Delete a data connector", Perm: permConnectorWrite, Audit: true, Status: 200, Response: empty{}, handle: s.deleteConnector},
		{Method: "GET", Pattern: "/v2/projects/{project}/dataconnectors/{dataconnector}:metrics", Summary: "Deliveries over the last 3 hours", Perm: permConnectorRead, Audit: true, Status: 200, Response: connectorMetrics{}, handle: s.connectorMetrics},
		{Method: "POST", Pattern: "/v2/projects/{project}/dataconnectors/{dataconnector}:sync", Summary: "Re-send the latest event of each type of every device", Perm: permConnectorWrite, Audit: true, Status: 200, Response: empty{}, handle: s.syncConnector},
		{Method: "GET", Pattern: "/v2/claimInfo", Summary: "What a device or kit identifier names, and whether it is claimed", Status: 200, Response: claimInfo{}, Query: []string{"identifier"}, handle: s.claimInfo},
		{Method: "GET", Pattern: "/v2/projects/{project}/devices/{device}/events", Summary: "A device's event history", Perm: permDeviceRead, Audit: true, Status: 200, Response: listEvents{}, Query: paged("eventTypes", "startTime", "endTime"), handle: s.listEvents},

		{Method: "POST", Pattern: emulatorBase + "/projects/{project}/devices", Summary: "Create an emulated device of any type (device emulator API); its id starts with emu and its productNumber is EMULATED", Perm: permDeviceUpdate, Audit: true, Status: 200, Request: createEmulated{}, Response: Device{}, handle: s.createEmulated},
		{Method: "POST", Pattern: emulatorBase + "/projects/{project}/devices/{device}:publish", Summary: "Publish an event as an emulated device: DT's body {\"<eventType>\": {...}}, of a type the device's type emits; rate limited per project", Perm: permDeviceUpdate, Audit: true, Status: 200, Request: map[string]any{}, Response: empty{}, handle: s.publishEmulated},
		{Method: "DELETE", Pattern: emulatorBase + "/projects/{project}/devices/{device}", Summary: "Delete an emulated device", Perm: permDeviceUpdate, Audit: true, Status: 200, Response: empty{}, handle: s.deleteEmulated},

		{Method: "GET", Pattern: "/v2/projects/{project}/auditLog", Summary: "The project's audit log, newest first (SealedSense extension)", Perm: permAuditRead, Status: 200, Response: listAudit{}, Query: paged(), handle: s.listAudit},
	}
}

type empty struct{}
