// Command goapp is the Go recipe's server (README.rst, "Recipes: the servers you run"),
// standard library only: it takes its listener from LISTEN_FDS, says READY=1 over
// NOTIFY_SOCKET once it serves, and drains on SIGTERM. GET / answers "VERSION PID NAME".
// Run on its own it binds -addr. The code between the two "recipe" lines is README's
// recipe, verbatim (tests/test_recipes.py checks that).
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

var version = "v1" // go build -ldflags "-X main.version=v2"

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on when not started by littleboss")
	flag.Parse()
	lns, err := inherited()
	if err != nil {
		log.Fatal(err)
	}
	name, ln := "http", lns["http"]
	if ln == nil {
		if ln, err = net.Listen("tcp", *addr); err != nil {
			log.Fatal(err)
		}
	}
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %d %s\n", version, os.Getpid(), name)
	})
	log.Printf("goapp %s pid %d serving", version, os.Getpid())
	serve(ln, app, time.Second)
}

// --- recipe ---

// inherited returns the listening sockets littleboss hands over (fds 3, 4, ...) by their
// LISTEN_FDNAMES names; none when the process was not started by littleboss.
func inherited() (map[string]net.Listener, error) {
	lns := map[string]net.Listener{}
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return lns, nil
	}
	n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	for _, key := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		os.Unsetenv(key) // not for the program's own children
	}
	for i := 0; i < n && i < len(names); i++ {
		f := os.NewFile(uintptr(3+i), names[i])
		ln, err := net.FileListener(f) // a duplicate: f itself is not needed any more
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("LISTEN_FDS: fd %d (%s): %w", 3+i, names[i], err)
		}
		lns[names[i]] = ln
	}
	return lns, nil
}

// notify sends state (e.g. "READY=1") to littleboss's NOTIFY_SOCKET, if there is one.
func notify(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET") // "@name": Go's net package maps '@' to the abstract namespace
	if addr == "" {
		return nil
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}

// serve serves h on ln and says READY=1. On SIGTERM it stops accepting (new connections
// wait in supervisord's socket for the new process), answers the next request on each
// open connection with "Connection: close", gives idle keep-alive connections grace to
// send one, and then shuts down: http.Server.Shutdown alone (or SetKeepAlivesEnabled)
// closes idle connections at once, and a client sending on one at that instant sees a reset.
func serve(ln net.Listener, h http.Handler, grace time.Duration) {
	var draining atomic.Bool
	var open atomic.Int64
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if draining.Load() {
				w.Header().Set("Connection", "close")
			}
			h.ServeHTTP(w, r)
		}),
		ConnState: func(c net.Conn, state http.ConnState) {
			switch state {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		},
	}
	go srv.Serve(ln)
	if err := notify("READY=1"); err != nil {
		log.Printf("NOTIFY_SOCKET: %v", err)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	<-stop
	draining.Store(true)
	ln.Close()
	for deadline := time.Now().Add(grace); open.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv.Shutdown(ctx) // closes what is still idle, waits for requests in flight
}

// --- recipe ---
