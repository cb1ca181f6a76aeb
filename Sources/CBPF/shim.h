// libbpf (Debian libbpf-dev): loading the tc-BPF translator, attaching it,
// and reaching its maps, whose layout the program and Swift share.
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <sys/vfs.h>
#include <sys/mount.h>
#include "../../bpf/nat64_maps.h"
