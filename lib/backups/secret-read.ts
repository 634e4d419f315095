import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';

/**
 * Lets a role read a database's secret, and decrypt it through Secrets Manager with the secret's customer-managed
 * key when it has one. The decrypt is granted in the role's own policy as well: `ISecret.grantRead` grants it only in
 * the key's policy, which for an imported key (`Secret.fromSecretAttributes({ encryptionKey: Key.fromKeyArn(…) })`,
 * the usual way to name a database's secret) is dropped without a word, and the agent could not read the secret.
 */
export function grantSecretRead(secret: secretsmanager.ISecret, grantee: iam.IGrantable): iam.Grant {
  const grant = secret.grantRead(grantee);
  if (!secret.encryptionKey) return grant;
  return grant.combine(iam.Grant.addToPrincipal({
    grantee,
    actions: ['kms:Decrypt'],
    resourceArns: [secret.encryptionKey.keyArn],
    conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(secret).region}.amazonaws.com` } },
  }));
}
