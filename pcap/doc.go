// Package pcap writes classic libpcap capture files (the format tcpdump,
// tshark and Wireshark read), for tests and debugging dumps that hand
// packets vifsec produced to an independent decoder.
//
// It owns the file header and per-record framing only: it does not capture,
// parse or filter packets, and it never reads files (tshark does that).
// The format is the one in draft-ietf-opsawg-pcap: a 24-byte file header,
// then for each packet a 16-byte record header and the packet bytes.
package pcap
