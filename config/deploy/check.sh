#!/usr/bin/env bash
# Checks the manifests under config/deploy without a cluster: every overlay renders, holds
# the expected objects, and every Deployment keeps the pod settings Weft promises (non-root,
# read-only root filesystem, no capabilities, probes, resources; no hostPath, no privileged
# pod, no DaemonSet), so Weft runs under the `restricted` Pod Security Standard and on
# serverless nodes.
#
#   config/deploy/check.sh            render and check (needs kubectl, or KUBECTL=…)
#   config/deploy/check.sh --server   also `kubectl apply --dry-run=server` every overlay
#                                     against the current kubeconfig's cluster (nothing is
#                                     created; namespaced objects are tried in `default`,
#                                     since weft-system need not exist)
set -euo pipefail
cd "$(dirname "$0")"
KUBECTL=${KUBECTL:-kubectl}
server=false
[[ ${1:-} == --server ]] && server=true

failures=0
fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The objects every overlay renders, as "Kind name" (the ConfigMap without its hash).
expected="ClusterRole weft-addressable-resolver
ClusterRole weft-broker-addressable-resolver
ClusterRole weft-channel-addressable-resolver
ClusterRole weft-controller
ClusterRole weft-data-plane
ClusterRole weft-service-addressable-resolver
ClusterRole weft-serving-addressable-resolver
ClusterRoleBinding weft-controller
ClusterRoleBinding weft-controller-addressable-resolver
ClusterRoleBinding weft-dispatcher
ClusterRoleBinding weft-ingress
ConfigMap weft-config
CustomResourceDefinition brokers.eventing.knative.dev
CustomResourceDefinition triggers.eventing.knative.dev
Deployment weft-controller
Deployment weft-dispatcher
Deployment weft-ingress
Namespace weft-system
PodDisruptionBudget weft-dispatcher
PodDisruptionBudget weft-ingress
Role weft-controller-leader-election
RoleBinding weft-controller-leader-election
Secret weft-channel
Service weft-ingress
ServiceAccount weft-controller
ServiceAccount weft-dispatcher
ServiceAccount weft-ingress"

# Lines each Deployment's pod template must contain.
required=(
    "runAsNonRoot: true"
    "runAsUser: 65532"
    "type: RuntimeDefault"
    "allowPrivilegeEscalation: false"
    "readOnlyRootFilesystem: true"
    "- ALL"
    "path: /healthz"
    "path: /readyz"
    "requests:"
    "limits:"
    "name: weft-channel"
    "fieldPath: metadata.name"
    "fieldPath: metadata.namespace"
    "name: weft-config-"
    "image: ghcr.io/weft-dev/weft:latest"
)

for overlay in kafka nats postgres; do
    dir=$work/$overlay
    mkdir -p "$dir"
    if ! "$KUBECTL" kustomize "overlays/$overlay" >"$dir/all.yaml"; then
        fail "$overlay: kustomize build failed"
        continue
    fi
    # One file per object.
    awk -v dir="$dir" 'BEGIN { n = 0; f = dir "/obj-0.yaml" }
        /^---$/ { n++; f = dir "/obj-" n ".yaml"; next }
        { print > f }' "$dir/all.yaml"

    got=$(for f in "$dir"/obj-*.yaml; do
        kind=$(sed -n 's/^kind: //p' "$f")
        name=$(sed -n '/^metadata:/,/^[a-z]/s/^  name: //p' "$f" | head -1)
        [[ $kind == ConfigMap ]] && name=${name%-*}
        echo "$kind $name"
    done | sort)
    if [[ $got != "$expected" ]]; then
        fail "$overlay: rendered objects differ from the expected list:"
        diff <(echo "$expected") <(echo "$got") >&2 || true
    fi

    grep -q "url: ${overlay}://" "$dir/all.yaml" ||
        fail "$overlay: the Secret weft-channel does not hold a ${overlay}:// URL"
    for forbidden in "kind: DaemonSet" "hostPath:" "privileged: true" "hostNetwork: true" \
        "hostPID: true" "hostIPC: true" "hostPort:"; do
        if grep -q "$forbidden" "$dir/all.yaml"; then fail "$overlay: contains '$forbidden'"; fi
    done

    deployments=0
    for f in "$dir"/obj-*.yaml; do
        grep -q '^kind: Deployment$' "$f" || continue
        deployments=$((deployments + 1))
        name=$(sed -n '/^metadata:/,/^[a-z]/s/^  name: //p' "$f" | head -1)
        for line in "${required[@]}"; do
            grep -qF -- "$line" "$f" || fail "$overlay: Deployment $name lacks '$line'"
        done
    done
    [[ $deployments == 3 ]] || fail "$overlay: $deployments Deployments, expected 3"
    # The admin API is unauthenticated: the replicas serve it on loopback only.
    for f in "$dir"/obj-*.yaml; do
        grep -q '^kind: Deployment$' "$f" || continue
        grep -qE -- '^  name: weft-(ingress|dispatcher)$' "$f" || continue
        grep -qF -- "--admin-addr=127.0.0.1:" "$f" ||
            fail "$overlay: $(sed -n 's/^  name: //p' "$f" | head -1) serves the admin API beyond loopback"
    done
    if grep -qE -- "--admin-addr=(0\.0\.0\.0|\[::\])" "$dir/all.yaml"; then
        fail "$overlay: an admin address listens on every interface"
    fi

    if $server; then
        # weft-system may not exist, and a dry run cannot create it for the objects after
        # it: try the namespaced objects in `default` instead.
        for f in "$dir"/obj-*.yaml; do
            grep -q '^kind: Namespace$' "$f" && continue
            sed 's/^  namespace: weft-system$/  namespace: default/' "$f"
            echo ---
        done >"$dir/server.yaml"
        if ! "$KUBECTL" apply --dry-run=server -f "$dir/server.yaml" >"$dir/server.out" 2>&1; then
            fail "$overlay: server dry run failed:"
            grep -v 'last-applied-configuration' "$dir/server.out" >&2
        fi
    fi
done

# The component for clusters with Knative Eventing drops the CRDs and nothing else.
mkdir -p "$work/knative"
cp -r ../crds "$work/crds"
mkdir -p "$work/deploy"
cp -r base components overlays "$work/deploy/"
mkdir -p "$work/deploy/overlays/knative"
cat >"$work/deploy/overlays/knative/kustomization.yaml" <<'EOF'
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ../kafka
components:
- ../../components/no-crds
EOF
if "$KUBECTL" kustomize "$work/deploy/overlays/knative" >"$work/knative/all.yaml"; then
    grep -q '^kind: CustomResourceDefinition$' "$work/knative/all.yaml" &&
        fail "components/no-crds: CRDs still rendered"
    grep -q '^kind: Deployment$' "$work/knative/all.yaml" ||
        fail "components/no-crds: the Deployments are gone too"
else
    fail "components/no-crds: kustomize build failed"
fi

if ((failures)); then
    echo "$failures check(s) failed" >&2
    exit 1
fi
echo "config/deploy: all checks passed$($server && echo ' (with server dry run)')"
