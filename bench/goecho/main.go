// The Go tutorial echo server ("Golang: Echo Protocol (RFC862)", kept in
// ../shared/reference/go-echo-tutorial.txt), as `make bench` runs it for
// comparison: echoservertcp.go and echoserverudp.go verbatim in one
// program, except that the address comes from the command line instead
// of ":7" so the bench can pick a free port.
package main

import (
	"io"
	"log"
	"net"
	"os"
)

func echo(con net.Conn) {
	_, err := io.Copy(con, con)
	if err != nil {
		log.Print(err)
	}
	err = con.Close()
	if err != nil {
		log.Print(err)
	}
}

func serveTCP(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Fatal(err)
	}
	for {
		con, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go echo(con)
	}
}

var sem = make(chan int, 100)

func echoUDP(con net.PacketConn) {
	defer func() { <-sem }()
	buf := make([]byte, 4096)
	nr, addr, err := con.ReadFrom(buf)
	if err != nil {
		log.Print(err)
		return
	}
	nw, err := con.WriteTo(buf[:nr], addr)
	if err != nil {
		log.Print(err)
		return
	}
	if nw != nr {
		log.Printf("received %d bytes but sent %d\n", nr, nw)
	}
}

func serveUDP(addr string) {
	con, err := net.ListenPacket("udp", addr)
	if err != nil {
		log.Fatal(err)
	}
	for {
		sem <- 1
		go echoUDP(con)
	}
}

func main() {
	log.SetFlags(log.Lshortfile)
	addr := ":7"
	if len(os.Args) > 1 {
		addr = os.Args[1]
	}
	go serveUDP(addr)
	serveTCP(addr)
}
