// Renders a Go text/template (Ollama's template language) for each case in a JSON file, as Ollama renders a
// Modelfile's TEMPLATE over .Messages; outputs are separated by NUL bytes.
package main

import (
	"encoding/json"
	"os"
	"text/template"
)

func main() {
	source, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	tmpl := template.Must(template.New("modelfile").Parse(string(source)))
	raw, err := os.ReadFile(os.Args[2])
	if err != nil {
		panic(err)
	}
	var cases []map[string]any
	if err := json.Unmarshal(raw, &cases); err != nil {
		panic(err)
	}
	for _, data := range cases {
		if err := tmpl.Execute(os.Stdout, data); err != nil {
			panic(err)
		}
		os.Stdout.Write([]byte{0})
	}
}
