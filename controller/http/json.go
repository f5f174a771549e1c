package http

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"loaxa.vn/controller/loaxa"
)

// MaxJSONBytes is the largest JSON request body accepted.
const MaxJSONBytes = 1 << 20

// decodeJSON reads exactly one JSON object from the request body into v, a
// pointer to a request struct. Every way a body can be wrong comes back as
// an *loaxa.Error whose message names the problem and how to fix it: an
// unaccepted Content-Type, an empty or oversized body, broken JSON, an
// unknown field (with the list of accepted ones), a value of the wrong type
// (naming the field), or data after the object.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	return decodeJSONMax(w, r, v, MaxJSONBytes)
}

// decodeJSONMax is decodeJSON for a body of up to max bytes.
func decodeJSONMax(w http.ResponseWriter, r *http.Request, v any, max int64) error {
	if err := checkJSONContentType(r.Header.Get("Content-Type")); err != nil {
		return err
	}
	body := http.MaxBytesReader(w, r.Body, max)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, v)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if tooLarge(err) {
			return errBodyTooLarge()
		}
		return loaxa.Errorf(loaxa.EInvalid, "The request body continues after the JSON object; send exactly one JSON object.")
	}
	return nil
}

// checkJSONContentType accepts application/json, any +json type, no type,
// and application/x-www-form-urlencoded — what `curl -d` sends by default;
// the body must be JSON all the same.
func checkJSONContentType(ct string) error {
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil {
		switch {
		case mt == "application/json", strings.HasSuffix(mt, "+json"), mt == "application/x-www-form-urlencoded":
			return nil
		}
	}
	return loaxa.Errorf(loaxa.EUnsupported,
		"Content-Type %q is not accepted here; send a JSON object with Content-Type: application/json.", ct)
}

func errBodyTooLarge() error {
	return loaxa.Errorf(loaxa.ETooLarge, "The request body is larger than %s; JSON requests are small, so check what is being sent.",
		formatBytes(MaxJSONBytes))
}

func tooLarge(err error) bool {
	var mbe *http.MaxBytesError
	return errors.As(err, &mbe)
}

// jsonError explains a decoding error of a request into v.
func jsonError(err error, v any) error {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case tooLarge(err):
		return errBodyTooLarge()
	case errors.Is(err, io.EOF):
		return loaxa.Errorf(loaxa.EInvalid, "The request body is empty; send a JSON object with the fields %s.", fieldList(v))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return loaxa.Errorf(loaxa.EInvalid, "The request body ends in the middle of the JSON; send one complete JSON object.")
	case errors.As(err, &syntax):
		return loaxa.Errorf(loaxa.EInvalid, "The request body is not valid JSON at byte %d (%s); send one JSON object.",
			syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: "))
	case errors.As(err, &typ):
		if typ.Field == "" {
			return loaxa.Errorf(loaxa.EInvalid, "The request body must be a JSON object with the fields %s, not %s.",
				fieldList(v), describeValue(typ.Value))
		}
		return loaxa.Errorf(loaxa.EInvalid, "Field %q must be %s, not %s.", typ.Field, describeType(typ.Type), describeValue(typ.Value))
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		if unq, uerr := strconv.Unquote(name); uerr == nil {
			name = unq
		}
		if fr, ok := v.(fieldRefuser); ok {
			if msg, ok := fr.refuseField(name); ok {
				return loaxa.Errorf(loaxa.EInvalid, "%s", msg)
			}
		}
		return loaxa.Errorf(loaxa.EInvalid, "Unknown field %q; the accepted fields are %s.", name, fieldList(v))
	}
	// Left: a read error from the connection, or a custom decoder's
	// complaint; either way the request did not arrive as JSON we can use.
	return loaxa.Errorf(loaxa.EInvalid, "The request body could not be read as JSON (%s); send one JSON object.",
		strings.TrimPrefix(err.Error(), "json: "))
}

// fieldRefuser is a request type that says why it does not take a field
// a related request takes (an all-clear's targets), more than that the
// field is unknown.
type fieldRefuser interface {
	refuseField(name string) (message string, ok bool)
}

// describeValue turns UnmarshalTypeError.Value ("number -5", "string")
// into words; only numbers are echoed, and only short ones.
func describeValue(v string) string {
	kind, literal, _ := strings.Cut(v, " ")
	switch kind {
	case "number":
		if literal != "" && len(literal) <= 32 {
			return "the number " + literal
		}
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "array":
		return "a list"
	case "object":
		return "an object"
	}
	return v
}

var timeType = reflect.TypeFor[time.Time]()

// describeType says in JSON words what a Go type accepts.
func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType {
		return "an RFC 3339 time string"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number ≥ 0"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list of " + strings.TrimPrefix(strings.TrimPrefix(describeType(t.Elem()), "a "), "an ") + "s"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "a " + t.Kind().String()
}

// fieldList names the JSON fields of the struct v points to, nested ones as
// parent.child, e.g. "title, targets.areas, targets.nodes".
func fieldList(v any) string {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return "(none)"
	}
	return strings.Join(jsonFields(t, "", 0), ", ")
}

func jsonFields(t reflect.Type, prefix string, depth int) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct && f.Tag.Get("json") == "" {
			// An embedded struct's fields are the request's own, as
			// encoding/json reads them.
			out = append(out, jsonFields(f.Type, prefix, depth)...)
			continue
		}
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != timeType && depth < 3 {
			out = append(out, jsonFields(ft, prefix+name+".", depth+1)...)
			continue
		}
		out = append(out, prefix+name)
	}
	return out
}

// formatBytes writes a byte count the way people read limits: 1 MiB, 200 MiB.
func formatBytes(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB (%d bytes)", float64(n)/(1<<20), n)
	}
	return fmt.Sprintf("%d bytes", n)
}
