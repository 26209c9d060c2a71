// Command isol8 runs untrusted code in sandboxes; see internal/cli.
package main

import (
	"os"

	"github.com/isol8/isol8/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
