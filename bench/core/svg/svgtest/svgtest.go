// Package svgtest reads back the charts package svg writes, for tests:
// it decodes a chart strictly as XML and collects its elements, its
// series and its texts.
package svgtest

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

// Doc is what a test reads back from a chart: every element's name,
// the series lines, and every text.
type Doc struct {
	Elements []string
	Series   map[string]string // data-series -> stroke-dasharray ("" when solid)
	Texts    []string
}

// Parse decodes the chart strictly as XML and collects what the tests
// look at.
func Parse(t *testing.T, b []byte) Doc {
	t.Helper()
	d := Doc{Series: map[string]string{}}
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	var inText bool
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			d.Elements = append(d.Elements, el.Name.Local)
			inText = el.Name.Local == "text"
			if el.Name.Local == "svg" && el.Name.Space != "http://www.w3.org/2000/svg" {
				t.Errorf("svg namespace %q", el.Name.Space)
			}
			if el.Name.Local == "polyline" {
				var name, dash string
				for _, a := range el.Attr {
					switch a.Name.Local {
					case "data-series":
						name = a.Value
					case "stroke-dasharray":
						dash = a.Value
					}
				}
				if class(el) == "series" {
					d.Series[name] = dash
				}
			}
		case xml.CharData:
			if inText {
				d.Texts = append(d.Texts, strings.TrimSpace(string(el)))
			}
		case xml.EndElement:
			inText = false
		}
	}
	return d
}

func class(el xml.StartElement) string {
	for _, a := range el.Attr {
		if a.Name.Local == "class" {
			return a.Value
		}
	}
	return ""
}
