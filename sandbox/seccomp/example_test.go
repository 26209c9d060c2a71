package seccomp_test

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/isol8/isol8/sandbox/seccomp"
)

func ExampleJSON() {
	data, err := seccomp.JSON()
	if err != nil {
		panic(err)
	}
	var p struct {
		DefaultAction string `json:"defaultAction"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		panic(err)
	}
	fmt.Println(p.DefaultAction, slices.Contains(seccomp.Refused, "io_uring_setup"))
	// Output: SCMP_ACT_ERRNO true
}
