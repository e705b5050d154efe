/**
 * The constants of mechanism E (spec §5, §10.4) with the kernel's names (`include/linux/kvm_host.h`,
 * `kvm_types.h`). Numbers stand for pointers and pfns here: host virtual pages and pfns are small
 * positive integers, so the kernel's error values become negative ones.
 */

/** `INVALID_GPA`: the cache is HVA-based (`kvm_gpc_activate_hva`). */
export const INVALID_GPA = -1

/** `KVM_HVA_ERR_BAD`. */
export const KVM_HVA_ERR_BAD = -2

/** `KVM_PFN_ERR_FAULT` (`is_error_noslot_pfn` is true of it). */
export const KVM_PFN_ERR_FAULT = -3

/** `NULL` for `khva`. */
export const NULL = 0

/** `-EINVAL`, `-EFAULT` as `__kvm_gpc_refresh` returns them. */
export const EINVAL = -22
export const EFAULT = -14

/** `is_error_noslot_pfn`. */
export const is_error_noslot_pfn = (pfn: number): boolean => pfn < 0 || pfn === NULL

/** `kvm_is_error_hva`. */
export const kvm_is_error_hva = (hva: number): boolean => hva < 0

/** `kvm_is_error_gpa`. */
export const kvm_is_error_gpa = (gpa: number): boolean => gpa < 0
