// golibcni drives CNI plugins through the reference Go library (libcni),
// the way container runtimes do, to prove that what our plugins print is
// accepted and understood by it.
//
//	golibcni -conflist FILE -netns PATH -cni-path DIR[:DIR] -cache-dir DIR \
//	         [-container-id ID] [-ifname NAME] [-args K=V;...] OP [OP...]
//
// OP is add, check, del, validate (ValidateNetworkList: every plugin's
// VERSION answer must cover the list's cniVersion) or version
// (GetVersionInfo of the first plugin's type); the operations run in order
// against the same attachment. For every operation one JSON line is
// printed on stdout:
//
//	{"op":"add","ok":true,"result":{...current...},"raw":{...as returned...}}
//	{"op":"check","ok":false,"error":"...","code":999}
//	{"op":"version","ok":true,"supportedVersions":["0.1.0",...]}
//
// "result" is the plugin's result converted by libcni to the newest
// version the library implements; "raw" is the result in the version the
// plugin printed. The exit code is 0 when every operation succeeded, 1
// when one failed and 2 on usage errors.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

type report struct {
	Op       string          `json:"op"`
	OK       bool            `json:"ok"`
	Result   json.RawMessage `json:"result,omitempty"`
	Raw      json.RawMessage `json:"raw,omitempty"`
	Version  string          `json:"version,omitempty"`
	Versions []string        `json:"supportedVersions,omitempty"`
	Error    string          `json:"error,omitempty"`
	Code     uint            `json:"code,omitempty"`
}

func main() {
	conflist := flag.String("conflist", "", "network configuration list file")
	netns := flag.String("netns", "", "container network namespace path")
	cniPath := flag.String("cni-path", "", "plugin directories, colon separated")
	cacheDir := flag.String("cache-dir", "", "libcni result cache directory")
	containerID := flag.String("container-id", "golibcni", "container ID")
	ifname := flag.String("ifname", "eth0", "interface name in the container")
	cniArgs := flag.String("args", "", "CNI_ARGS as K=V;K=V")
	flag.Parse()
	if *conflist == "" || *cniPath == "" || flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}

	list, err := libcni.ConfListFromFile(*conflist)
	if err != nil {
		fmt.Fprintf(os.Stderr, "loading %s: %v\n", *conflist, err)
		os.Exit(2)
	}
	cni := libcni.NewCNIConfigWithCacheDir(filepath.SplitList(*cniPath), *cacheDir, nil)
	rt := &libcni.RuntimeConf{
		ContainerID: *containerID,
		NetNS:       *netns,
		IfName:      *ifname,
		Args:        parseArgs(*cniArgs),
	}

	ctx := context.Background()
	out := json.NewEncoder(os.Stdout)
	failed := false
	for _, op := range flag.Args() {
		rep := report{Op: op}
		switch op {
		case "add":
			var res types.Result
			res, err = cni.AddNetworkList(ctx, list, rt)
			if err == nil {
				err = describe(&rep, res)
			}
		case "check":
			err = cni.CheckNetworkList(ctx, list, rt)
		case "del":
			err = cni.DelNetworkList(ctx, list, rt)
		case "validate":
			_, err = cni.ValidateNetworkList(ctx, list)
		case "version":
			var info version.PluginInfo
			info, err = cni.GetVersionInfo(ctx, list.Plugins[0].Network.Type)
			if err == nil {
				rep.Versions = info.SupportedVersions()
			}
		default:
			fmt.Fprintf(os.Stderr, "unknown operation %q\n", op)
			os.Exit(2)
		}
		if err != nil {
			failed = true
			rep.Error = err.Error()
			var cniErr *types.Error
			if errors.As(err, &cniErr) {
				rep.Code = cniErr.Code
			}
		} else {
			rep.OK = true
		}
		if encErr := out.Encode(rep); encErr != nil {
			fmt.Fprintf(os.Stderr, "writing report: %v\n", encErr)
			os.Exit(2)
		}
	}
	if failed {
		os.Exit(1)
	}
}

// describe fills in the raw result and its conversion to the current version.
func describe(rep *report, res types.Result) error {
	raw, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("marshalling result: %w", err)
	}
	rep.Raw = raw
	rep.Version = res.Version()
	converted, err := current.NewResultFromResult(res)
	if err != nil {
		return fmt.Errorf("converting result to %s: %w", current.ImplementedSpecVersion, err)
	}
	rep.Result, err = json.Marshal(converted)
	return err
}

func parseArgs(text string) [][2]string {
	var pairs [][2]string
	for _, item := range strings.Split(text, ";") {
		if item == "" {
			continue
		}
		kv := strings.SplitN(item, "=", 2)
		if len(kv) == 2 {
			pairs = append(pairs, [2]string{kv[0], kv[1]})
		}
	}
	return pairs
}
