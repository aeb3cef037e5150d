/** Worker ID → the live tasks it holds (assigned or running), so a lost worker's tasks are found without a scan. */
export class HeldTasks<T> {
  private readonly held = new Map<string, Set<T>>();

  /** The tasks `workerId` holds now (a copy). */
  of(workerId: string): T[] {
    return [...(this.held.get(workerId) ?? [])];
  }

  /** `task` reached `workerId`. */
  add(task: T, workerId: string): void {
    let set = this.held.get(workerId);
    if (!set) this.held.set(workerId, (set = new Set()));
    set.add(task);
  }

  /** `task` left `workerId`'s hands; false when it was not there. */
  remove(task: T, workerId: string): boolean {
    const set = this.held.get(workerId);
    if (!set?.delete(task)) return false;
    if (set.size === 0) this.held.delete(workerId);
    return true;
  }
}
