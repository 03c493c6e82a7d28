// Table headers of the admin page: the columns of numbers are right-aligned, as their cells.
import { h } from './dom'

const NUMERIC = new Set(['#', 'Size', 'Log rows', 'Versions', 'Connections', 'Documents', 'In', 'Out', 'PID'])

export const headCell = (label: string): HTMLElement => h(NUMERIC.has(label) ? 'th.num' : 'th', {}, label)
