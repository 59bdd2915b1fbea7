// Package e2e is the local-cluster test bed of redis-keda: see README.md.
//
// The real parts (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, KEDA operator) are started by package cluster; the one
// stand-in (package node) plays the kubelet and runs pods of project images
// as local processes. Tests in this folder need the build tag e2e:
//
//	cd e2e && go test -tags e2e -v -timeout 30m .
package e2e
