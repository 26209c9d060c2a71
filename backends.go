package isol8

// The backends a local engine can open by name. Each registers itself.
import (
	_ "github.com/isol8/isol8/sandbox/docker"
	_ "github.com/isol8/isol8/sandbox/native"
)
