package securitytest

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/isol8/isol8"
)

// networkRuns is how many network-none runs go at once.
const networkRuns = 20

func networkCases() []Case {
	return []Case{{Name: "network/none-20-parallel", Budget: 4 * time.Minute, Attack: networkNone}}
}

// networkProbe tries every way out it can name without sending a packet
// anywhere but the sandbox's own loopback and the host's own addresses
// (loopback and the docker bridge gateway). A UDP connect() sends nothing:
// it only asks for a route.
const networkProbe = pyPrelude + `import socket
tcp, udp, gw = int(os.environ["HOST_TCP"]), int(os.environ["HOST_UDP"]), os.environ.get("GATEWAY", "")
out = {"sysnet": sorted(os.listdir("/sys/class/net")),
       "netdev": sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]),
       "routes4": open("/proc/net/route").read().splitlines()[1:]}
try:
    out["routes6"] = [l for l in open("/proc/net/ipv6_route").read().splitlines() if l.split()[-1] != "lo"]
    out["addrs6"] = sorted(set(l.split()[-1] for l in open("/proc/net/if_inet6").read().splitlines()))
except OSError:
    out["routes6"], out["addrs6"] = [], []
def sock(fam, typ):
    s = socket.socket(fam, typ)
    s.settimeout(2)
    return s
def tcp_connect(host, port, fam):
    try:
        s = sock(fam, socket.SOCK_STREAM)
    except OSError as e:
        return en(e)
    try:
        s.connect((host, port))
        return "CONNECTED"
    except OSError as e:
        return en(e)
    finally:
        s.close()
def udp_send(host, port, fam):
    try:
        s = sock(fam, socket.SOCK_DGRAM)
    except OSError as e:
        return en(e)
    try:
        s.sendto(b"isol8-probe", (host, port))
        return "SENT"
    except OSError as e:
        return en(e)
    finally:
        s.close()
def route(host, fam):
    try:
        s = sock(fam, socket.SOCK_DGRAM)
    except OSError as e:
        return en(e)
    try:
        s.connect((host, 53))
        return "ROUTED"
    except OSError as e:
        return en(e)
    finally:
        s.close()
ways = {"tcp 127.0.0.1": tcp_connect("127.0.0.1", tcp, socket.AF_INET),
        "tcp [::1]": tcp_connect("::1", tcp, socket.AF_INET6),
        "route to 192.0.2.1": route("192.0.2.1", socket.AF_INET),
        "route to 2001:db8::1": route("2001:db8::1", socket.AF_INET6)}
# The resolver's servers must be unreachable: DNS can send nothing.
for line in open("/etc/resolv.conf").read().splitlines():
    f = line.split()
    if len(f) >= 2 and f[0] == "nameserver" and not f[1].startswith("127."):
        ways["route to nameserver " + f[1]] = route(f[1], socket.AF_INET6 if ":" in f[1] else socket.AF_INET)
if gw:
    ways["tcp gateway"] = tcp_connect(gw, tcp, socket.AF_INET)
    ways["udp gateway"] = udp_send(gw, udp, socket.AF_INET)
try:
    socket.getaddrinfo("example.com", 80)
    ways["dns example.com"] = "RESOLVED"
except OSError as e:
    ways["dns example.com"] = "gaierror %s" % (e.args[0],)
out["ways"] = ways
# The sandbox's own loopback: sending works, but the host must not receive it.
out["local"] = {"udp 127.0.0.1": udp_send("127.0.0.1", udp, socket.AF_INET),
                "udp [::1]": udp_send("::1", udp, socket.AF_INET6)}
try:
    socket.getaddrinfo("localhost", 80)
    out["localhost"] = "ok"
except OSError as e:
    out["localhost"] = str(e)
report(out)
`

type networkReport struct {
	Sysnet, Netdev, Routes4, Routes6, Addrs6 []string
	Ways, Local                              map[string]string
}

func networkNone(t *testing.T, h *H) {
	l := startHostListeners(t)
	defer l.close()
	e := h.Engine(isol8.Python, isol8.Options{Network: isol8.NetworkNone})
	var wg sync.WaitGroup
	results := make([]*isol8.Result, networkRuns)
	errs := make([]error, networkRuns)
	for i := range networkRuns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := h.Request(isol8.Python, networkProbe)
			req.Env = map[string]string{"HOST_TCP": strconv.Itoa(l.tcpPort), "HOST_UDP": strconv.Itoa(l.udpPort), "GATEWAY": l.gateway}
			results[i], errs[i] = e.Execute(h.Ctx, req)
		}()
	}
	wg.Wait()
	for i := range networkRuns {
		t.Run(fmt.Sprintf("run%02d", i), func(t *testing.T) {
			res, err := results[i], errs[i]
			if !mustRun(t, res, err) {
				return
			}
			var r networkReport
			if !reportOf(t, res, &r) {
				return
			}
			if !slices.Equal(r.Sysnet, []string{"lo"}) || !slices.Equal(r.Netdev, []string{"lo"}) {
				t.Errorf("interfaces besides loopback: /sys/class/net %v, /proc/net/dev %v", r.Sysnet, r.Netdev)
			}
			if len(r.Addrs6) > 0 && !slices.Equal(r.Addrs6, []string{"lo"}) {
				t.Errorf("IPv6 addresses on interfaces besides loopback: %v", r.Addrs6)
			}
			if len(r.Routes4) > 0 || len(r.Routes6) > 0 {
				t.Errorf("routes exist: IPv4 %v, IPv6 %v", r.Routes4, r.Routes6)
			}
			if len(r.Ways) < 5 {
				t.Errorf("only %d ways out were tried", len(r.Ways))
			}
			for _, k := range sortedKeys(r.Ways) {
				if !refused(r.Ways[k]) {
					t.Errorf("%s: %s", k, r.Ways[k])
				}
			}
			if i == 0 {
				t.Logf("ways out: %v; own loopback: %v", r.Ways, r.Local)
			}
			h.AssertGone(t, res.ContainerID)
		})
	}
	time.Sleep(200 * time.Millisecond) // let any stray packet land
	if n := l.tcp.Load(); n > 0 {
		t.Errorf("the host's TCP listener accepted %d connections from network-none sandboxes", n)
	}
	if n := l.udp.Load(); n > 0 {
		t.Errorf("the host's UDP listener received %d datagrams from network-none sandboxes", n)
	}
}

// hostListeners listen on the host's own addresses only: loopback (IPv4
// and IPv6) and the docker bridge gateway, on one TCP and one UDP port.
type hostListeners struct {
	tcpPort, udpPort int
	gateway          string
	tcp, udp         atomic.Int64
	closers          []interface{ Close() error }
}

func startHostListeners(t *testing.T) *hostListeners {
	t.Helper()
	l := &hostListeners{gateway: bridgeGateway()}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("host listener: %v", err)
	}
	l.tcpPort = ln.Addr().(*net.TCPAddr).Port
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("host UDP listener: %v", err)
	}
	l.udpPort = pc.LocalAddr().(*net.UDPAddr).Port
	l.serveTCP(ln)
	l.serveUDP(pc)
	hosts := []string{"::1"}
	if l.gateway != "" {
		hosts = append(hosts, l.gateway)
	} else {
		t.Logf("no docker bridge address on this host; the gateway is not tried")
	}
	for _, host := range hosts {
		if ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(l.tcpPort))); err == nil {
			l.serveTCP(ln)
		} else {
			t.Logf("host listener on %s: %v", host, err)
		}
		if pc, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(l.udpPort))); err == nil {
			l.serveUDP(pc)
		} else {
			t.Logf("host UDP listener on %s: %v", host, err)
		}
	}
	// The listeners work: the host itself reaches them, then the counts restart.
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(l.tcpPort)), time.Second); err != nil {
		t.Fatalf("the host cannot reach its own listener: %v", err)
	} else {
		c.Close()
	}
	deadline := time.Now().Add(2 * time.Second)
	for l.tcp.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	l.tcp.Store(0)
	return l
}

func (l *hostListeners) serveTCP(ln net.Listener) {
	l.closers = append(l.closers, ln)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			l.tcp.Add(1)
			c.Close()
		}
	}()
}

func (l *hostListeners) serveUDP(pc net.PacketConn) {
	l.closers = append(l.closers, pc)
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
			l.udp.Add(1)
		}
	}()
}

func (l *hostListeners) close() {
	for _, c := range l.closers {
		c.Close()
	}
}

// bridgeGateway is the host's own address on the docker bridge (docker0),
// or "" when there is none.
func bridgeGateway() string {
	ifc, err := net.InterfaceByName("docker0")
	if err != nil {
		return ""
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}
