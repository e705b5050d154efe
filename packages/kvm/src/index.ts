/**
 * @kvmlab/kvm — the model of the x86 KVM coordination protocols: vCPU threads whose run loop
 * follows `vcpu_enter_guest`, requests and kicks, remote TLB flushes, lockless shadow walks
 * against zapping, physical CPUs with IPIs, the cost model, and the variants and bug switches
 * with the spec's names.
 */
export * as Costs from "./Costs.js"
export * as Invariants from "./requests/Invariants.js"
export * as Pcpu from "./host/Pcpu.js"
export * as Scheduler from "./host/Scheduler.js"
export * as Protocol from "./requests/Protocol.js"
export * as PvFlush from "./pvflush/index.js"
export * as Requests from "./requests/Requests.js"
export * as ShadowMmu from "./mmu/ShadowMmu.js"
export * as State from "./requests/State.js"
export * as Variants from "./Variants.js"
export * as Vcpu from "./requests/Vcpu.js"
export * as Vm from "./Vm.js"
