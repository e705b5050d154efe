/**
 * @kvmlab/kvm — the model of the x86 KVM coordination protocols: the vCPU thread every mechanism
 * shares (`vcpu/`: `vcpu_run`, `vcpu_enter_guest`, `kvm_vcpu_block`, the preempt notifiers, and
 * the `Extension` a mechanism attaches through), requests and kicks, remote TLB flushes, lockless
 * shadow walks against zapping (mechanism A), the paravirtual TLB flush (mechanism B), physical
 * CPUs with IPIs and the host's schedulers, the cost model, and the variants and bug switches
 * with the spec's names.
 */
export * as Costs from "./Costs.js"
export * as Extension from "./vcpu/Extension.js"
export * as Hog from "./host/Hog.js"
export * as HostProtocol from "./host/Protocol.js"
export * as Hypercall from "./vcpu/Hypercall.js"
export * as KvmClock from "./kvmclock/index.js"
export * as Invariants from "./requests/Invariants.js"
export * as Lapic from "./vcpu/Lapic.js"
export * as Memslots from "./memslots/index.js"
export * as Mm from "./host/Mm.js"
export * as Mmu from "./mmu/Mmu.js"
export * as MmuFault from "./mmu/Fault.js"
export * as MmuZap from "./mmu/Zap.js"
export * as Pcpu from "./host/Pcpu.js"
export * as PfnCache from "./pfncache/index.js"
export * as Protocol from "./requests/Protocol.js"
export * as PvFlush from "./pvflush/index.js"
export * as PvFlushVariants from "./pvflush/Variants.js"
export * as Requests from "./requests/Requests.js"
export * as RequestsExtension from "./requests/Extension.js"
export * as RequestsVariants from "./requests/Variants.js"
export * as Sched from "./vcpu/Sched.js"
export * as Thread from "./vcpu/Thread.js"
export * as Scheduler from "./host/Scheduler.js"
export * as ShadowMmu from "./mmu/ShadowMmu.js"
export * as Spin from "./vcpu/Spin.js"
export * as Spte from "./mmu/Spte.js"
export * as Srcu from "./vcpu/Srcu.js"
export * as State from "./vcpu/State.js"
export * as Switch from "./vcpu/Switch.js"
export * as Variants from "./Variants.js"
export * as Vcpu from "./vcpu/Vcpu.js"
export * as VcpuProtocol from "./vcpu/Protocol.js"
export * as Vm from "./Vm.js"
