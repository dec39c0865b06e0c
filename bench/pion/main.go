// bench/pion: Pion's TURN server (github.com/pion/turn/v2, Debian golang-github-pion-turn.v2-dev)
// as bench/compare's third peer, set up like ferry and coturn there. Shaped after Pion's
// examples/turn-server/simple and port-range; one SO_REUSEPORT socket per thread, as ferry and
// coturn have one per worker. The password comes from the environment, never argv.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"github.com/pion/turn/v2"
)

// SO_REUSEPORT (asm-generic/socket.h); Go 1.19's syscall package does not name it.
const soReusePort = 0xf

func main() {
	listen := flag.String("listen", "127.0.0.1:3478", "UDP listening address")
	relayIP := flag.String("relay-ip", "127.0.0.1", "relay address (bound and advertised)")
	minPort := flag.Uint("min-port", 20000, "lowest relay port")
	maxPort := flag.Uint("max-port", 29999, "highest relay port")
	realm := flag.String("realm", "bench.ferry", "realm")
	user := flag.String("user", "bench", "long-term credential user")
	passwordEnv := flag.String("password-env", "FERRY_BENCH_PASSWORD", "environment variable holding the password")
	threads := flag.Int("threads", runtime.NumCPU(), "listening sockets (SO_REUSEPORT) and GOMAXPROCS")
	tcp := flag.Bool("tcp", false, "also accept TURN over TCP on the same address (as examples/turn-server/tcp)")
	flag.Parse()
	password := os.Getenv(*passwordEnv)
	if password == "" || *threads < 1 {
		log.Fatalf("set %s to the password and --threads to at least 1", *passwordEnv)
	}
	runtime.GOMAXPROCS(*threads)
	key := turn.GenerateAuthKey(*user, *realm, password)
	reuse := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, soReusePort, 1) })
		if err != nil {
			return err
		}
		return serr
	}}
	// Random ports with enough retries to fill most of the range (10,000 of 10,500).
	relay := func() turn.RelayAddressGenerator {
		return &turn.RelayAddressGeneratorPortRange{RelayAddress: net.ParseIP(*relayIP), Address: *relayIP,
			MinPort: uint16(*minPort), MaxPort: uint16(*maxPort), MaxRetries: 1000}
	}
	// Loopback peers only, like ferry's peers.allow [127.0.0.0/8] and coturn's --allow-loopback-peers.
	loopbackOnly := func(_ net.Addr, peer net.IP) bool { return peer.IsLoopback() }
	var conns []turn.PacketConnConfig
	for i := 0; i < *threads; i++ {
		pc, err := reuse.ListenPacket(context.Background(), "udp4", *listen)
		if err != nil {
			log.Fatalf("listen %s: %v", *listen, err)
		}
		conns = append(conns, turn.PacketConnConfig{PacketConn: pc, RelayAddressGenerator: relay(),
			PermissionHandler: loopbackOnly})
	}
	var listeners []turn.ListenerConfig
	if *tcp {
		l, err := net.Listen("tcp4", *listen)
		if err != nil {
			log.Fatalf("listen tcp %s: %v", *listen, err)
		}
		listeners = append(listeners, turn.ListenerConfig{Listener: l, RelayAddressGenerator: relay(),
			PermissionHandler: loopbackOnly})
	}
	s, err := turn.NewServer(turn.ServerConfig{Realm: *realm, PacketConnConfigs: conns, ListenerConfigs: listeners,
		AuthHandler: func(u, _ string, _ net.Addr) ([]byte, bool) { return key, u == *user }})
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("pion turn listening on %s (%d sockets), relay %s:%d-%d", *listen, *threads, *relayIP, *minPort, *maxPort)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	<-sigs
	_ = s.Close()
}
