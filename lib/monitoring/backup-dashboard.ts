import { Duration, Size } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { Construct } from 'constructs';
import { RestorableError } from '../shared/errors';

export interface BackupDashboardProps {
  readonly title: string;
  /** The worst backup age over its threshold. */
  readonly staleness: cloudwatch.IMetric;
  readonly withoutBackup: cloudwatch.IMetric;
  readonly notChecked: cloudwatch.IMetric;
  /** New backups' size against their limits. */
  readonly sizeSignal: cloudwatch.IMetric;
  /** The alarms to show; read when the dashboard renders, so alarms added later appear too. */
  readonly alarms: cloudwatch.IAlarm[];
}

/** What a source's row shows. */
export interface SourceRowMetrics {
  readonly age: cloudwatch.IMetric;
  /** Its threshold: older than this is stale. */
  readonly maxAge: Duration;
  readonly size: cloudwatch.IMetric;
  /**
   * Its minimum size, when it has one.
   * @default - no minimum line
   */
  readonly minSize?: Size;
  /**
   * The age of its newest archived WAL, drawn beside its backup age, for a source that archives its WAL.
   * @default - no WAL line
   */
  readonly walAge?: cloudwatch.IMetric;
  /**
   * The WAL age's threshold.
   * @default - no WAL threshold line
   */
  readonly walMaxAge?: Duration;
  /**
   * The age of its newest streamed binlog object, drawn beside its backup age, for a MariaDB source whose binlogs are streamed.
   * @default - no binlog line
   */
  readonly binlogAge?: cloudwatch.IMetric;
  /**
   * The binlog age's threshold.
   * @default - no binlog threshold line
   */
  readonly binlogMaxAge?: Duration;
}

const GRID_WIDTH = 24;

/**
 * The backup dashboard: fleet signals and alarm states first, then one row per source with its backup age
 * against its threshold and its size over time, in 16 of the 24 columns: the rest is for restore-test widgets.
 */
export class BackupDashboard extends Construct {
  public readonly dashboard: cloudwatch.Dashboard;
  private readonly rows = new Map<string, SourceRow>();

  constructor(scope: Construct, id: string, props: BackupDashboardProps) {
    super(scope, id);
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', { defaultInterval: Duration.days(14) });
    this.dashboard.addWidgets(new cloudwatch.TextWidget({
      markdown: `# ${props.title}\nFleet signals first; then one row per source: backup age against its threshold, and backup size over time.`,
      width: GRID_WIDTH, height: 2,
    }));
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Worst backup age / threshold (above 1: stale)',
        left: [props.staleness],
        leftAnnotations: [{ value: 1, label: 'stale', color: cloudwatch.Color.RED }],
        width: 8,
      }),
      new cloudwatch.GraphWidget({ title: 'Sources without backup / not checked', left: [props.withoutBackup, props.notChecked], width: 8 }),
      new cloudwatch.GraphWidget({
        title: 'New backup size / its limits (below 1: anomaly)',
        left: [props.sizeSignal],
        leftAnnotations: [{ value: 1, label: 'anomaly', color: cloudwatch.Color.RED }],
        width: 8,
      }),
    );
    this.dashboard.addWidgets(new cloudwatch.AlarmStatusWidget({ title: 'Backup alarms', alarms: props.alarms, width: GRID_WIDTH }));
  }

  public addSourceRow(source: string, metrics: SourceRowMetrics): void {
    // The continuous archive's age beside the backup age: WAL for PostgreSQL, binlogs for MariaDB.
    const continuous = [
      { label: 'WAL', age: metrics.walAge, maxAge: metrics.walMaxAge },
      { label: 'binlog', age: metrics.binlogAge, maxAge: metrics.binlogMaxAge },
    ];
    const row = new SourceRow([
      new cloudwatch.GraphWidget({
        title: `${source}: backup age (s)${continuous.map((c) => c.age ? `, ${c.label} age (s)` : '').join('')}`,
        left: [metrics.age, ...continuous.flatMap((c) => c.age ? [c.age] : [])],
        leftAnnotations: [
          { value: metrics.maxAge.toSeconds(), label: 'maxAge', color: cloudwatch.Color.RED },
          ...continuous.flatMap((c) => c.maxAge ? [{ value: c.maxAge.toSeconds(), label: `${c.label} maxAge`, color: cloudwatch.Color.ORANGE }] : []),
        ],
        leftYAxis: { min: 0 },
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: `${source}: backup size (bytes)`,
        left: [metrics.size],
        leftAnnotations: metrics.minSize !== undefined ? [{ value: metrics.minSize.toBytes(), label: 'minimum', color: cloudwatch.Color.RED }] : undefined,
        leftYAxis: { min: 0 },
        width: 8,
      }),
    ]);
    this.rows.set(source, row);
    this.dashboard.addWidgets(row);
  }

  /** A widget beside the source's age and size, for example its restore-test results. */
  public addSourceWidget(source: string, widget: cloudwatch.IWidget): void {
    const row = this.rows.get(source);
    if (!row) throw new RestorableError(this, `source '${source}' has no row on the dashboard; add the source to the monitoring first`);
    if (row.usedWidth + widget.width > GRID_WIDTH) {
      throw new RestorableError(this, `the dashboard row of '${source}' has ${GRID_WIDTH - row.usedWidth} of ${GRID_WIDTH} columns left, too few for a widget ${widget.width} wide`);
    }
    row.widgets.push(widget);
  }
}

/**
 * One line of the dashboard that still takes widgets after it joined the dashboard (cloudwatch.Row.addWidget
 * would start a new line for them). Widgets are placed left to right when the dashboard renders.
 */
class SourceRow implements cloudwatch.IWidget {
  public readonly width = GRID_WIDTH;
  private x = 0;
  private y = 0;

  constructor(public readonly widgets: cloudwatch.IWidget[]) {}

  public get height(): number {
    return Math.max(...this.widgets.map((w) => w.height));
  }

  public get usedWidth(): number {
    return this.widgets.reduce((sum, w) => sum + w.width, 0);
  }

  public position(x: number, y: number): void {
    this.x = x;
    this.y = y;
  }

  public toJson(): unknown[] {
    let x = this.x;
    return this.widgets.flatMap((w) => {
      w.position(x, this.y);
      x += w.width;
      return w.toJson();
    });
  }
}
