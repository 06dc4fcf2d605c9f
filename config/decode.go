package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
)

// decodeGeneric parses JSON into maps, slices, strings, bools and
// json.Numbers.
func decodeGeneric(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// decodeField stores the generic JSON value v into out (a pointer) and
// reports every problem with its field path: unknown fields (when strict),
// wrong types and bad values. It does what json.Decoder with
// DisallowUnknownFields does, but names the field and keeps going after
// the first problem. Field names match case-sensitively, as Kubernetes'
// strict decoding does (sigs.k8s.io/json), unlike encoding/json.
func decodeField(p *problems, path string, v any, out any, strict bool) {
	decodeValue(p, path, v, reflect.ValueOf(out).Elem(), strict)
}

func decodeValue(p *problems, path string, v any, rv reflect.Value, strict bool) {
	if v == nil { // JSON null leaves the zero value, like encoding/json.
		return
	}
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			rv.Set(reflect.New(rv.Type().Elem()))
		}
		decodeValue(p, path, v, rv.Elem(), strict)
		return
	}
	if reflect.PointerTo(rv.Type()).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		decodeLeaf(p, path, v, rv)
		return
	}
	switch rv.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			p.add(path, "must be an object, got "+describe(v))
			return
		}
		t := rv.Type()
		known := make(map[string]bool, t.NumField())
		for i := range t.NumField() {
			f := t.Field(i)
			name := jsonName(f)
			if name == "" {
				continue
			}
			known[name] = true
			if fv, ok := m[name]; ok {
				decodeValue(p, child(path, name), fv, rv.Field(i), strict)
			}
		}
		if strict {
			var unknown []string
			for k := range m {
				if !known[k] {
					unknown = append(unknown, k)
				}
			}
			slices.Sort(unknown)
			for _, k := range unknown {
				p.add(child(path, k), "unknown field")
			}
		}
	case reflect.Slice:
		arr, ok := v.([]any)
		if !ok {
			p.add(path, "must be a list, got "+describe(v))
			return
		}
		s := reflect.MakeSlice(rv.Type(), len(arr), len(arr))
		for i, e := range arr {
			decodeValue(p, index(path, i), e, s.Index(i), strict)
		}
		rv.Set(s)
	default:
		decodeLeaf(p, path, v, rv)
	}
}

// decodeLeaf round-trips a scalar through encoding/json into rv.
func decodeLeaf(p *problems, path string, v any, rv reflect.Value) {
	b, err := json.Marshal(v)
	if err != nil {
		p.add(path, "cannot be encoded: "+err.Error())
		return
	}
	target := reflect.New(rv.Type())
	if err := json.Unmarshal(b, target.Interface()); err != nil {
		var ute *json.UnmarshalTypeError
		if target.Type().Implements(reflect.TypeFor[json.Unmarshaler]()) && !errors.As(err, &ute) {
			// Our own types (Duration) return a user-facing message.
			p.add(path, err.Error())
			return
		}
		p.add(path, "must be "+kindName(rv.Type())+", got "+describe(v))
		return
	}
	rv.Set(target.Elem())
}

// jsonName is the JSON key of a struct field, or "" if it has none.
func jsonName(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	tag := f.Tag.Get("json")
	if tag == "-" {
		return ""
	}
	name, _, _ := strings.Cut(tag, ",")
	if name == "" {
		return f.Name
	}
	return name
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int32:
		return "a 32-bit integer"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int64:
		return "an integer"
	case reflect.Uint32:
		return "an integer from 0 to 4294967295"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint64:
		return "a non-negative integer"
	default:
		return "a " + t.Kind().String()
	}
}

// describe summarises a generic JSON value for an error message.
func describe(v any) string {
	switch x := v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		if len(x) > 40 {
			x = x[:40] + "..."
		}
		b, _ := json.Marshal(x)
		return "string " + string(b)
	case json.Number:
		s := x.String()
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return "number " + s
	case bool:
		if x {
			return "true"
		}
		return "false"
	case nil:
		return "null"
	default:
		return "a value"
	}
}
