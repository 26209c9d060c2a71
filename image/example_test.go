package image_test

import (
	"context"
	"log"
	"os"

	"github.com/isol8/isol8/image"
)

// Build the runtime images, printing each step.
func Example() {
	b, err := image.New()
	if err != nil {
		log.Fatal(err)
	}
	defer b.Close()
	err = b.EnsureRuntimeImages(context.Background(), image.Options{
		SystemPackages: map[string][]string{"python": {"python3-numpy"}},
		Progress:       image.LineWriter(os.Stderr, false),
	})
	if err != nil {
		log.Fatal(err)
	}
}
