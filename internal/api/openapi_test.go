package api

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	wire "github.com/vifsec/vifsec/api"
)

// docs/openapi.json describes the API. It is written from the table below
// and the wire types (go test ./internal/api -run TestOpenAPIDocument
// -args -update-openapi), and checked against the server: its routes are the
// routes the server registers, and real answers carry exactly the
// documented properties.

var updateOpenAPI = flag.Bool("update-openapi", false, "rewrite docs/openapi.json")

const openAPIPath = "../../docs/openapi.json"

type apiRoute struct {
	method, path, summary string
	status                int // success status
	req, resp             any // nil: no body
}

func apiRoutes() []apiRoute {
	return []apiRoute{
		{"GET", "/v2/version", "API and daemon version", 200, nil, wire.VersionInfo{}},
		{"GET", "/v2/tenants", "vifsec tenant list", 200, nil, []wire.Tenant{}},
		{"POST", "/v2/tenants", "vifsec tenant add", 201, wire.TenantAddRequest{}, wire.Added{}},
		{"GET", "/v2/tenants/{name}", "one tenant", 200, nil, wire.Tenant{}},
		{"DELETE", "/v2/tenants/{name}", "vifsec tenant remove", 200, nil, wire.Removed{}},
		{"GET", "/v2/vms", "vifsec vm list", 200, nil, []wire.VM{}},
		{"POST", "/v2/vms", "vifsec vm attach", 201, wire.VMAttachRequest{}, wire.Added{}},
		{"GET", "/v2/vms/{name}", "one VM", 200, nil, wire.VM{}},
		{"PUT", "/v2/vms/{name}", "idempotent attach (vifsec-hook)", 200, wire.VMAttachRequest{}, wire.Added{}},
		{"DELETE", "/v2/vms/{name}", "vifsec vm detach", 200, nil, wire.Removed{}},
		{"POST", "/v2/vms/{name}/move", "vifsec vm move (fleet store only)", 200, wire.MoveRequest{}, wire.Added{}},
		{"GET", "/v2/uplink", "vifsec uplink show (null: none set)", 200, nil, (*wire.Uplink)(nil)},
		{"PUT", "/v2/uplink", "vifsec uplink set", 200, wire.UplinkSetRequest{}, wire.Added{}},
		{"GET", "/v2/sa", "vifsec sa list", 200, nil, []wire.SA{}},
		{"POST", "/v2/sa", "vifsec sa add", 201, wire.SAAddRequest{}, wire.Added{}},
		{"DELETE", "/v2/sa", "vifsec sa remove --removeall (needs ?all=true)", 200, nil, wire.Removed{}},
		{"GET", "/v2/sa/{name}", "one SA", 200, nil, wire.SA{}},
		{"DELETE", "/v2/sa/{name}", "vifsec sa remove --sa-name", 200, nil, wire.Removed{}},
		{"GET", "/v2/sp", "vifsec sp list", 200, nil, []wire.SP{}},
		{"POST", "/v2/sp", "vifsec sp add", 201, wire.SPAddRequest{}, wire.Added{}},
		{"DELETE", "/v2/sp", "vifsec sp remove --removeall (needs ?all=true)", 200, nil, wire.Removed{}},
		{"GET", "/v2/sp/{name}", "one SP", 200, nil, wire.SP{}},
		{"DELETE", "/v2/sp/{name}", "vifsec sp remove --sp-name", 200, nil, wire.Removed{}},
		{"GET", "/v2/fdb", "vifsec overlay fdb list", 200, nil, []wire.FDBEntry{}},
		{"POST", "/v2/fdb", "vifsec overlay fdb add", 201, wire.FDBAddRequest{}, wire.Added{}},
		{"DELETE", "/v2/fdb", "vifsec overlay fdb remove (?tenant=&mac=)", 200, nil, wire.Removed{}},
		{"GET", "/v2/config", "vifsec config show", 200, nil, wire.Config{}},
		{"PUT", "/v2/config", "vifsec config modify", 200, wire.ConfigModifyRequest{}, wire.Added{}},
		{"GET", "/v2/stats", "vifsec stats", 200, nil, []wire.Stats{}},
		{"GET", "/v2/stats/uplink", "vifsec stats --uplink", 200, nil, wire.UplinkStats{}},
		{"GET", "/v2/ipsecsa", "vifsec show-ipsecsa", 200, nil, []wire.IPsecSA{}},
		{"GET", "/v2/offload", "vifsec offload show", 200, nil, []wire.Offload{}},
		{"GET", "/v2/policies", "vifsec policy show", 200, nil, []wire.Policy{}},
		{"POST", "/v2/policies", "vifsec policy create", 201, wire.PolicyCreateRequest{}, wire.Added{}},
		{"PATCH", "/v2/policies/{tenant}/{name}", "vifsec policy modify", 200, wire.PolicyModifyRequest{}, wire.Added{}},
		{"DELETE", "/v2/policies/{tenant}/{name}", "vifsec policy delete", 200, nil, wire.Removed{}},
		{"POST", "/v2/policies/{tenant}/{name}/rekey", "vifsec policy rekey", 200, wire.PolicyRekeyRequest{}, wire.Rekeyed{}},
		{"GET", "/v2/certificates", "vifsec certificate show", 200, nil, []wire.Certificate{}},
		{"POST", "/v2/certificates", "vifsec certificate install", 201, wire.CertificateInstallRequest{}, wire.Added{}},
		{"DELETE", "/v2/certificates/{tenant}/{name}", "vifsec certificate delete", 200, nil, wire.Removed{}},
		{"GET", "/v2/ca-certificates", "vifsec ca-certificate show", 200, nil, []wire.Certificate{}},
		{"POST", "/v2/ca-certificates", "vifsec ca-certificate add", 200, wire.CACertificatesAddRequest{}, wire.Added{}},
		{"DELETE", "/v2/ca-certificates/{tenant}/{name}", "vifsec ca-certificate remove", 200, nil, wire.Removed{}},
		{"GET", "/v2/crls", "vifsec crl show", 200, nil, []wire.CRL{}},
		{"POST", "/v2/crls", "vifsec crl add", 201, wire.CRLAddRequest{}, wire.Added{}},
		{"GET", "/v2/ikesa", "vifsec show-ikesa", 200, nil, []wire.IKESA{}},
		{"GET", "/v2/health", "the fleet store's health (fleet store only)", 200, nil, wire.Health{}},
		{"GET", "/v2/fleet", "vifsec fleet status (fleet store only)", 200, nil, wire.FleetStatus{}},
	}
}

// schemaOf writes the JSON schema of t, adding named wire types to comps.
func schemaOf(t reflect.Type, comps map[string]any) map[string]any {
	switch t {
	case reflect.TypeFor[wire.SPI]():
		return map[string]any{"type": []string{"string", "null"}, "pattern": "^0x[0-9a-f]{8}$", "description": "ESP SPI; null: none"}
	case reflect.TypeFor[wire.NullString]():
		return map[string]any{"type": []string{"string", "null"}}
	case reflect.TypeFor[wire.Value]():
		return map[string]any{"type": []string{"string", "number", "boolean", "null"}, "description": "a flag's value, as on the command line"}
	case reflect.TypeFor[wire.List]():
		return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "array", "items": map[string]any{"type": "string"}}, map[string]any{"type": "null"}}}
	case reflect.TypeFor[time.Time]():
		return map[string]any{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return map[string]any{"anyOf": []any{schemaOf(t.Elem(), comps), map[string]any{"type": "null"}}}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int64, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Int32:
		return map[string]any{"type": "integer"}
	case reflect.Slice:
		return map[string]any{"type": []string{"array", "null"}, "items": schemaOf(t.Elem(), comps)}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": schemaOf(t.Elem(), comps)}
	case reflect.Struct:
		name := t.Name()
		if _, ok := comps[name]; !ok {
			comps[name] = nil // recursion guard
			props, required := map[string]any{}, []string{}
			for i := range t.NumField() {
				f := t.Field(i)
				tag := f.Tag.Get("json")
				if tag == "-" || !f.IsExported() {
					continue
				}
				parts := strings.Split(tag, ",")
				props[parts[0]] = schemaOf(f.Type, comps)
				if !slices.Contains(parts[1:], "omitempty") && !slices.Contains(parts[1:], "omitzero") {
					required = append(required, parts[0])
				}
			}
			comps[name] = map[string]any{"type": "object", "properties": props, "required": required, "additionalProperties": false}
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	panic(fmt.Sprintf("openapi: no schema for %v", t))
}

func buildOpenAPI() map[string]any {
	comps := map[string]any{}
	paths := map[string]any{}
	errBody := schemaOf(reflect.TypeFor[wire.ErrorBody](), comps)
	for _, r := range apiRoutes() {
		op := map[string]any{"summary": r.summary}
		var params []any
		for _, m := range regexp.MustCompile(`\{(\w+)\}`).FindAllStringSubmatch(r.path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if r.req != nil {
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(r.req), comps)}}}
		}
		op["responses"] = map[string]any{
			fmt.Sprint(r.status): map[string]any{"description": "success", "content": map[string]any{"application/json": map[string]any{"schema": schemaOf(reflect.TypeOf(r.resp), comps)}}},
			"default":            map[string]any{"description": "refused: code is stable (invalid, bad_request, not_found, exists, in_use, conflict, internal, unavailable)", "content": map[string]any{"application/json": map[string]any{"schema": errBody}}},
		}
		item, _ := paths[r.path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[r.path] = item
		}
		item[strings.ToLower(r.method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "vifsecd control API", "version": wire.Version,
			"description": "HTTP+JSON on vifsecd's unix socket (curl --unix-socket /run/vifsec/vifsecd.sock http://vifsecd/v2/...). Request fields are the CLI's flags with - written _. See internal/api/README.md."},
		"paths":      paths,
		"components": map[string]any{"schemas": comps},
	}
}

func TestOpenAPIDocument(t *testing.T) {
	want, err := json.MarshalIndent(buildOpenAPI(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	if *updateOpenAPI {
		if err := os.WriteFile(openAPIPath, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(openAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s is not what the route table and the wire types say; run go test ./internal/api -run TestOpenAPIDocument -args -update-openapi", openAPIPath)
	}
}

func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(openAPIPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", openAPIPath, err)
	}
	return doc
}

// sourceRoutes are the routes this package registers, read from its
// source: "METHOD /v2/path", {name...} written {name}.
func sourceRoutes(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob("*.go")
	re := regexp.MustCompile(`HandleFunc\("(GET|POST|PUT|PATCH|DELETE) "\+p\+"([^"]+)"`)
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			out = append(out, m[1]+" /"+Version+strings.ReplaceAll(m[2], "...}", "}"))
		}
	}
	sort.Strings(out)
	return out
}

func docRoutes(doc map[string]any) []string {
	var out []string
	for path, item := range doc["paths"].(map[string]any) {
		for method := range item.(map[string]any) {
			out = append(out, strings.ToUpper(method)+" "+path)
		}
	}
	sort.Strings(out)
	return out
}

// samplePath fills a documented path's parameters with the names
// seedObjects made.
func samplePath(path string) string {
	r := strings.NewReplacer("/tenants/{name}", "/tenants/t1", "/vms/{name}", "/vms/vm1", "/sa/{name}", "/sa/sa_2", "/sp/{name}", "/sp/sp1",
		"{tenant}", "t1", "{name}", "x")
	return r.Replace(path)
}

// TestOpenAPIRoutes: every route the server registers is documented, and
// every documented route is served (not the unknown-endpoint answer).
func TestOpenAPIRoutes(t *testing.T) {
	doc := loadOpenAPI(t)
	src, documented := sourceRoutes(t), docRoutes(doc)
	if len(src) < 40 {
		t.Fatalf("found only %d routes in the source: %v", len(src), src)
	}
	for _, r := range src {
		if !slices.Contains(documented, r) {
			t.Errorf("%s is served but not in %s", r, openAPIPath)
		}
	}
	for _, r := range documented {
		if !slices.Contains(src, r) {
			t.Errorf("%s is in %s but not served", r, openAPIPath)
		}
	}
	c := serve(t)
	for _, r := range documented {
		method, path, _ := strings.Cut(r, " ")
		if strings.HasSuffix(path, "/move") || path == "/v2/health" || path == "/v2/fleet" {
			continue // NewFleetHandler's (TestFleetHandler)
		}
		err := c.Do(context.Background(), method, samplePath(path), nil, nil)
		var ae *Error
		if errors.As(err, &ae) && (ae.Status == http.StatusMethodNotAllowed || strings.Contains(ae.Message, "no such API endpoint")) {
			t.Errorf("%s: %v", r, err)
		}
	}
}

// TestOpenAPIResponses: each documented GET answers, on a server with one
// of each object, JSON with exactly the documented properties: none
// undocumented, none required missing, types as documented.
func TestOpenAPIResponses(t *testing.T) {
	doc := loadOpenAPI(t)
	c := serve(t)
	seedObjects(t, c)
	ctx := context.Background()
	if _, err := c.SetUplink(ctx, wire.UplinkSetRequest{Dev: "eth0", Overlay: "vxlan", VXLANLocal: "192.0.2.1"}); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for path, item := range doc["paths"].(map[string]any) {
		op, ok := item.(map[string]any)["get"].(map[string]any)
		if !ok || path == "/v2/health" || path == "/v2/fleet" {
			continue
		}
		schema := op["responses"].(map[string]any)["200"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["schema"]
		var v any
		if err := c.Do(ctx, http.MethodGet, samplePath(path), nil, &v); err != nil {
			t.Errorf("GET %s: %v", path, err)
			continue
		}
		for _, e := range validate(doc, schema.(map[string]any), v, "GET "+path) {
			t.Error(e)
		}
		checked++
	}
	if checked < 15 {
		t.Errorf("checked %d GET answers", checked)
	}
}

// validate checks v against the subset of JSON Schema buildOpenAPI writes.
func validate(doc map[string]any, s map[string]any, v any, at string) []string {
	if ref, ok := s["$ref"].(string); ok {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		return validate(doc, doc["components"].(map[string]any)["schemas"].(map[string]any)[name].(map[string]any), v, at)
	}
	for _, k := range []string{"anyOf", "oneOf"} {
		if alts, ok := s[k].([]any); ok {
			var errs []string
			for _, a := range alts {
				e := validate(doc, a.(map[string]any), v, at)
				if e == nil {
					return nil
				}
				errs = append(errs, e...)
			}
			return []string{fmt.Sprintf("%s: matches none of %s: %v", at, k, errs)}
		}
	}
	var types []string
	switch ty := s["type"].(type) {
	case string:
		types = []string{ty}
	case []any:
		for _, x := range ty {
			types = append(types, x.(string))
		}
	}
	got := "null"
	switch x := v.(type) {
	case string:
		got = "string"
	case bool:
		got = "boolean"
	case float64:
		got = "number"
		if x == float64(int64(x)) {
			got = "integer"
		}
	case []any:
		got = "array"
	case map[string]any:
		got = "object"
	}
	if !slices.Contains(types, got) && !(got == "integer" && slices.Contains(types, "number")) {
		return []string{fmt.Sprintf("%s: %s, documented %v", at, got, types)}
	}
	if p, ok := s["pattern"].(string); ok && got == "string" && !regexp.MustCompile(p).MatchString(v.(string)) {
		return []string{fmt.Sprintf("%s: %q does not match %s", at, v, p)}
	}
	var errs []string
	switch x := v.(type) {
	case []any:
		for i, e := range x {
			errs = append(errs, validate(doc, s["items"].(map[string]any), e, fmt.Sprintf("%s[%d]", at, i))...)
		}
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		for k, e := range x {
			if ps, ok := props[k].(map[string]any); ok {
				errs = append(errs, validate(doc, ps, e, at+"."+k)...)
			} else if ap, ok := s["additionalProperties"].(map[string]any); ok {
				errs = append(errs, validate(doc, ap, e, at+"."+k)...)
			} else {
				errs = append(errs, fmt.Sprintf("%s: property %q is not documented", at, k))
			}
		}
		req, _ := s["required"].([]any)
		for _, r := range req {
			if _, ok := x[r.(string)]; !ok {
				errs = append(errs, fmt.Sprintf("%s: required property %q is missing", at, r))
			}
		}
	}
	return errs
}
