/**
 * The x86-TSO abstract machine (Owens, Sarkar, Sewell, "A better x86 memory model: x86-TSO",
 * TPHOLs 2009) as pure rules, shared by the exhaustive litmus engine and the STM runtime:
 *
 * - each hardware thread has a FIFO store buffer; a store goes to the tail of its buffer;
 * - a load reads the newest store to that address in its own buffer, else memory;
 * - a drain moves a thread's oldest buffered store to memory, at any time;
 * - `mfence` and every locked read-modify-write need an empty buffer, and an RMW acts on memory
 *   atomically.
 *
 * Under `sc` a store writes memory at once, so there is never anything to drain.
 */

/** The memory models kvmlab implements. */
export type Model = "tso" | "sc"

/** A buffered store: an address and the value written. */
export interface BufferedStore {
  readonly addr: number
  readonly value: number
}

/** Store-buffer forwarding: the newest buffered value for `addr`, or undefined. */
export const forward = (buffer: ReadonlyArray<BufferedStore>, addr: number): number | undefined => {
  for (let i = buffer.length - 1; i >= 0; i--) {
    const e = buffer[i]!
    if (e.addr === addr) return e.value
  }
  return undefined
}

/** What a load by a thread with this buffer returns. */
export const load = (buffer: ReadonlyArray<BufferedStore>, memory: (addr: number) => number, addr: number): number => {
  const v = forward(buffer, addr)
  return v === undefined ? memory(addr) : v
}

/** Whether a fence or a locked instruction may execute: only with an empty buffer. */
export const fenceEnabled = (buffer: ReadonlyArray<BufferedStore>): boolean => buffer.length === 0

/** Parses a model name, or returns an error message naming the choices. */
export const parseModel = (s: string): Model | string =>
  s === "tso" || s === "sc" ? s : `unknown memory model "${s}": expected tso or sc`
