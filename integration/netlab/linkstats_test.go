package netlab

import "testing"

func TestSNMPTCP(t *testing.T) {
	snmp := "Ip: Forwarding DefaultTTL\nIp: 1 64\n" +
		"Tcp: RtoAlgorithm OutSegs RetransSegs\nTcp: 1 5000 42\n" +
		"Udp: InDatagrams\nUdp: 3\n"
	got, err := snmpTCP(snmp)
	if err != nil {
		t.Fatal(err)
	}
	if got["OutSegs"] != 5000 || got["RetransSegs"] != 42 {
		t.Fatalf("got %v", got)
	}
	for _, bad := range []string{"", "Tcp: OutSegs\n", "Tcp: OutSegs RetransSegs\nTcp: 1\n", "Tcp: OutSegs\nTcp: x\n"} {
		if _, err := snmpTCP(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
