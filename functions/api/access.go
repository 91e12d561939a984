package api

import (
	"slices"
	"strings"
)

// Permissions, as DT names them.
const (
	permProjectRead    = "project.read"
	permProjectUpdate  = "project.update"
	permProjectDelete  = "project.delete"
	permProjectCreate  = "project.create"
	permDeviceRead     = "device.read"
	permDeviceUpdate   = "device.update"
	permDeviceClaim    = "device.claim"
	permDeviceTransfer = "device.transfer"
	permMemberRead     = "membership.read"
	permMemberWrite    = "membership.update"
	permAccountRead    = "serviceaccount.read"
	permAccountWrite   = "serviceaccount.update"
	permKeyRead        = "serviceaccount.key.read"
	permKeyWrite       = "serviceaccount.key.update"
	permAuditRead      = "auditlog.read"
	permOrgRead        = "organization.read"
	permConnectorRead  = "dataconnector.read"
	permConnectorWrite = "dataconnector.update"
	permProjectExport  = "project.export"
	permProjectErase   = "project.erase"
	permDeviceErase    = "device.erase"
)

// Role is one of the four fixed roles.
type Role struct {
	Name        string   `json:"name"`
	DisplayName string   `json:"displayName"`
	Description string   `json:"description"`
	Permissions []string `json:"permissions"`
}

const (
	roleUser      = "roles/project.user"
	roleDeveloper = "roles/project.developer"
	roleAdmin     = "roles/project.admin"
	roleOrgAdmin  = "roles/organization.admin"
)

// roles is the fixed role table: each role has the permissions of the one
// before it and more, as DT's do.
func roles() []Role {
	user := []string{permProjectRead, permDeviceRead, permMemberRead, permAccountRead, permKeyRead, permConnectorRead}
	developer := append(slices.Clone(user), permDeviceUpdate, permDeviceClaim, permConnectorWrite)
	admin := append(slices.Clone(developer), permProjectUpdate, permMemberWrite, permAccountWrite, permKeyWrite, permDeviceTransfer, permAuditRead, permProjectExport, permDeviceErase)
	org := append(slices.Clone(admin), permOrgRead, permProjectCreate, permProjectDelete, permProjectErase)
	return []Role{
		{Name: roleUser, DisplayName: "Project user", Description: "Reads the project's devices, events, data connectors, members and service accounts.", Permissions: user},
		{Name: roleDeveloper, DisplayName: "Project developer", Description: "A user who can also label, claim and change devices, and manage data connectors.", Permissions: developer},
		{Name: roleAdmin, DisplayName: "Project admin", Description: "A developer who can also manage the project, its members, service accounts and keys, transfer devices, read the audit log, export the project's data and erase a device's events.", Permissions: admin},
		{Name: roleOrgAdmin, DisplayName: "Organization admin", Description: "A project admin of every project in the organization, who can also create, delete and erase projects.", Permissions: org},
	}
}

func role(name string) (Role, bool) {
	for _, r := range roles() {
		if r.Name == name {
			return r, true
		}
	}
	return Role{}, false
}

// projectRole says whether a role can be granted on a project.
func projectRole(name string) bool {
	return name == roleUser || name == roleDeveloper || name == roleAdmin
}

// principal is an authenticated service account or person, and what it
// may do.
type principal struct {
	Account   string
	Email     string
	Key       string // "" for a person
	BasicAuth bool
	// User: a person signed in through Studio, not a service account.
	User bool
	// Grants maps a scope ("projects/p" or "organizations/o") to roles.
	Grants map[string][]string
	// wrappedSecret is the key's secret as stored, read with the rest, for
	// the token exchange and Basic auth; accountBound says it was wrapped
	// with apikey.SecretAAD, not apikey.LegacySecretAAD.
	wrappedSecret []byte
	accountBound  bool
}

// can says whether p holds perm on project, which belongs to org ("" when
// the project does not exist: then only project-scoped grants, which cannot
// exist either, could match).
func (p *principal) can(perm, project, org string) bool {
	scopes := []string{"projects/" + project}
	if org != "" {
		scopes = append(scopes, "organizations/"+org)
	}
	for _, sc := range scopes {
		for _, rn := range p.Grants[sc] {
			if r, ok := role(rn); ok && slices.Contains(r.Permissions, perm) {
				return true
			}
		}
	}
	return false
}

// canOrg says whether p holds perm through a grant on the organization
// itself, as managing the organization's members needs.
func (p *principal) canOrg(perm, org string) bool {
	for _, rn := range p.Grants["organizations/"+org] {
		if r, ok := role(rn); ok && slices.Contains(r.Permissions, perm) {
			return true
		}
	}
	return false
}

// orgPermissions lists what p may do in an organization.
func (p *principal) orgPermissions(org string) []string {
	out := []string{}
	for _, rn := range p.Grants["organizations/"+org] {
		if r, ok := role(rn); ok {
			out = append(out, r.Permissions...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// orgAdminOf lists the organizations p administers.
func (p *principal) orgAdminOf() []string {
	var out []string
	for sc, rs := range p.Grants {
		if o, ok := strings.CutPrefix(sc, "organizations/"); ok && slices.Contains(rs, roleOrgAdmin) {
			out = append(out, o)
		}
	}
	slices.Sort(out)
	return out
}

// permissions lists what p may do in project.
func (p *principal) permissions(project, org string) []string {
	var out []string
	for _, r := range roles() {
		for _, perm := range r.Permissions {
			if !slices.Contains(out, perm) && p.can(perm, project, org) {
				out = append(out, perm)
			}
		}
	}
	slices.Sort(out)
	return out
}
