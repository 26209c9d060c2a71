package egress_test

import (
	"fmt"

	"github.com/isol8/isol8/egress"
)

// A server policy tightened by a request's filter: a host must pass both
// allow lists, and either deny list blocks it. Patterns match the
// canonical host as a whole.
func ExamplePolicy_Intersect() {
	server := egress.Policy{Allow: []string{`.*\.example\.com`}, Deny: []string{`admin\.example\.com`}}
	request := egress.Policy{Allow: []string{`(api|admin|files)\.example\.com`}, Deny: []string{`files\..*`}}
	m, err := egress.Compile(server.Intersect(request))
	if err != nil {
		panic(err)
	}
	for _, host := range []string{"API.Example.com.", "admin.example.com", "files.example.com", "www.example.com", "api.example.com.evil.net"} {
		if _, err := m.MatchHost(host); err != nil {
			fmt.Println(err)
		} else {
			fmt.Println("allowed", host)
		}
	}
	// Output:
	// allowed API.Example.com.
	// egress: host admin.example.com blocked: matches deny pattern `admin\.example\.com`
	// egress: host files.example.com blocked: matches deny pattern `files\..*`
	// egress: host www.example.com blocked: matches no pattern of allow list 1
	// egress: host api.example.com.evil.net blocked: matches no allow pattern
}
