import { Router, type RequestHandler } from 'express';
import { TENANT_RULE, isTenantName } from '@imagegen/shared';
import type { ApiContext } from '../context';
import { basicAuth } from '../http/auth';
import { HttpProblem, invalid, notFound } from '../http/problem';
import { refuseBodyFields, refuseQueryParameters, requireContentType } from '../http/validate';
import { MAX_KEYS_PER_TENANT } from '../services/api-keys';
import { readUsage, usageQuery } from './usage';

function tenantParam(raw: unknown): string {
  const tenant = String(raw);
  if (!isTenantName(tenant)) throw invalid(`The tenant name ${TENANT_RULE}`, [{ path: 'tenant', message: TENANT_RULE }]);
  return tenant;
}

/** Operators manage each tenant's API keys and read its usage (admin credentials). */
export function tenantsAdminRouter(ctx: ApiContext, json: RequestHandler, redisReady: RequestHandler): Router {
  const router = Router();
  router.use('/admin/tenants', basicAuth(ctx.config.ADMIN_USER, ctx.adminPassword), redisReady);

  router.post('/admin/tenants/:tenant/keys', requireContentType('application/json'), json, async (req, res) => {
    const tenant = tenantParam(req.params.tenant);
    refuseBodyFields(req.body);
    const created = await ctx.apiKeyStore.create(tenant);
    if (!created) throw new HttpProblem(409, 'Conflict', `Tenant ${tenant} already has ${MAX_KEYS_PER_TENANT} keys; revoke one first`);
    res.setHeader('Cache-Control', 'no-store');
    res.status(201).json({ ...created, tenant });
  });

  router.get('/admin/tenants/:tenant/keys', async (req, res) => {
    refuseQueryParameters(req.query);
    const tenant = tenantParam(req.params.tenant);
    res.json({ object: 'list', tenant, data: await ctx.apiKeyStore.list(tenant) });
  });

  router.delete('/admin/tenants/:tenant/keys/:id', async (req, res) => {
    const tenant = tenantParam(req.params.tenant);
    const id = String(req.params.id);
    if (!(await ctx.apiKeyStore.revoke(tenant, id))) throw notFound(`Key ${id.length > 64 ? `${id.slice(0, 64)}…` : id} of tenant ${tenant}`);
    res.status(204).end();
  });

  router.get('/admin/tenants/:tenant/usage', async (req, res) => {
    const tenant = tenantParam(req.params.tenant);
    res.json(await readUsage(ctx, tenant, usageQuery(req.query)));
  });

  return router;
}
